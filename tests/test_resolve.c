/* SPDX-License-Identifier: MIT */
/*
 * tests/test_resolve.c - pier_resolve: numeric IPv4 and IPv6, "localhost"
 * from /etc/hosts, passive wildcard, PIER_EAI_NONAME for a non-numeric
 * name with AI_NUMERICHOST, the blocking form, cancel right after start,
 * many resolves at once.  Only numeric names and /etc/hosts entries are
 * used: nothing may query a DNS server.
 */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

static struct addrinfo numeric_hints(int family) {
  struct addrinfo h;
  memset(&h, 0, sizeof h);
  h.ai_family = family;
  h.ai_socktype = SOCK_STREAM;
  h.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  return h;
}

/* Resolve overlapped; returns the completion status, result in op. */
static int resolve_wait(pier_loop *loop, pier_op *op, const char *node,
                        const char *service, const struct addrinfo *hints) {
  int done = 0;
  memset(op, 0, sizeof *op);
  op->data = &done;
  T_OK(pier_resolve(loop, op, node, service, hints, t_count_cb));
  ck_assert_int_eq(done, 0); /* never from inside the call */
  t_run_until(loop, &done, 5000);
  for (int i = 0; i < 3; i++) pier_loop_run(loop, PIER_RUN_NOWAIT);
  ck_assert_int_eq(done, 1);
  return op->status;
}

static void assert_ipv4(const struct addrinfo *ai, uint32_t host, unsigned port) {
  const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
  ck_assert_int_eq(ai->ai_family, AF_INET);
  ck_assert_ptr_nonnull(sin);
  ck_assert_uint_eq(ai->ai_addrlen, sizeof *sin);
  ck_assert_int_eq(sin->sin_family, AF_INET);
  ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), host);
  ck_assert_uint_eq(ntohs(sin->sin_port), port);
}

START_TEST(numeric_ipv4_gives_one_inet_result) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  struct addrinfo h = numeric_hints(AF_UNSPEC);
  T_OK(resolve_wait(loop, &op, "127.0.0.1", "80", &h));
  ck_assert_ptr_nonnull(op.addrinfo);
  assert_ipv4(op.addrinfo, INADDR_LOOPBACK, 80);
  ck_assert_ptr_null(op.addrinfo->ai_next);
  pier_freeaddrinfo(op.addrinfo);
  t_loop_free(loop);
}
END_TEST

START_TEST(numeric_ipv6_gives_inet6_result) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  struct addrinfo h = numeric_hints(AF_UNSPEC);
  const struct sockaddr_in6 *sin6;
  T_OK(resolve_wait(loop, &op, "::1", "443", &h));
  ck_assert_ptr_nonnull(op.addrinfo);
  ck_assert_int_eq(op.addrinfo->ai_family, AF_INET6);
  ck_assert_uint_eq(op.addrinfo->ai_addrlen, sizeof *sin6);
  sin6 = (const struct sockaddr_in6 *)op.addrinfo->ai_addr;
  ck_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
  ck_assert_uint_eq(ntohs(sin6->sin6_port), 443);
  ck_assert_ptr_null(op.addrinfo->ai_next);
  pier_freeaddrinfo(op.addrinfo);
  t_loop_free(loop);
}
END_TEST

START_TEST(localhost_with_inet_hints_from_hosts_file) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  struct addrinfo h;
  memset(&h, 0, sizeof h);
  h.ai_family = AF_INET;
  h.ai_socktype = SOCK_STREAM;
  h.ai_flags = AI_NUMERICSERV;
  T_OK(resolve_wait(loop, &op, "localhost", "8080", &h));
  ck_assert_ptr_nonnull(op.addrinfo);
  for (const struct addrinfo *ai = op.addrinfo; ai; ai = ai->ai_next) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
    ck_assert_int_eq(ai->ai_family, AF_INET);
    ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr) >> 24, 127);
    ck_assert_uint_eq(ntohs(sin->sin_port), 8080);
  }
  pier_freeaddrinfo(op.addrinfo);
  t_loop_free(loop);
}
END_TEST

START_TEST(passive_null_node_gives_wildcard) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  struct addrinfo h = numeric_hints(AF_INET);
  h.ai_flags |= AI_PASSIVE;
  T_OK(resolve_wait(loop, &op, NULL, "5000", &h));
  ck_assert_ptr_nonnull(op.addrinfo);
  assert_ipv4(op.addrinfo, INADDR_ANY, 5000);
  pier_freeaddrinfo(op.addrinfo);
  t_loop_free(loop);
}
END_TEST

START_TEST(non_numeric_name_with_numerichost_gives_eai_noname) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  struct addrinfo h = numeric_hints(AF_UNSPEC);
  T_ERR(resolve_wait(loop, &op, "not-an-address", "80", &h), PIER_EAI_NONAME);
  ck_assert_ptr_null(op.addrinfo);
  t_loop_free(loop);
}
END_TEST

START_TEST(blocking_form_resolves_in_calling_thread) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  struct addrinfo h = numeric_hints(AF_INET);
  memset(&op, 0, sizeof op);
  T_OK(pier_resolve(loop, &op, "127.0.0.1", "22", &h, NULL));
  T_OK(op.status);
  ck_assert_ptr_nonnull(op.addrinfo);
  assert_ipv4(op.addrinfo, INADDR_LOOPBACK, 22);
  pier_freeaddrinfo(op.addrinfo);
  memset(&op, 0, sizeof op);
  T_ERR(pier_resolve(loop, &op, "not-an-address", "80", &h, NULL),
        PIER_EAI_NONAME);
  ck_assert_ptr_null(op.addrinfo);
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
  t_loop_free(loop);
}
END_TEST

typedef struct cancel_probe { int count, status; } cancel_probe;

static void cancel_cb(pier_op *op, int status) {
  cancel_probe *p = op->data;
  p->count++;
  p->status = status;
}

static void settle_cb(pier_timer *t) { (*(int *)t->data)++; }

START_TEST(cancel_right_after_start_completes_exactly_once) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  cancel_probe p = {0, 1};
  struct addrinfo h = numeric_hints(AF_INET);
  pier_timer settle;
  int settled = 0;
  memset(&op, 0, sizeof op);
  op.data = &p;
  T_OK(pier_resolve(loop, &op, "127.0.0.1", "80", &h, cancel_cb));
  int rc = pier_cancel(&op);
  ck_assert_msg(rc == 0 || rc == PIER_ENOENT, "pier_cancel returned %s",
                pier_err_name(rc));
  t_run_until(loop, &p.count, 5000);
  /* give a stray second completion 100 ms to show up */
  T_OK(pier_timer_init(loop, &settle));
  settle.data = &settled;
  T_OK(pier_timer_start(&settle, 100, 0, settle_cb));
  t_run_until(loop, &settled, 2000);
  ck_assert_int_eq(p.count, 1);
  ck_assert_msg(p.status == PIER_ECANCELED || p.status == 0,
                "status %s, want ECANCELED or 0", pier_err_name(p.status));
  ck_assert_int_eq(op.status, p.status);
  if (p.status == PIER_ECANCELED)
    ck_assert_ptr_null(op.addrinfo);
  else
    assert_ipv4(op.addrinfo, INADDR_LOOPBACK, 80);
  pier_freeaddrinfo(op.addrinfo);
  T_ERR(pier_cancel(&op), PIER_ENOENT);
  t_loop_free(loop);
}
END_TEST

START_TEST(many_resolves_at_once_all_complete) {
  enum { N = 24 };
  pier_loop *loop = t_loop_new();
  pier_op ops[N];
  char svc[N][16];
  struct addrinfo h = numeric_hints(AF_INET);
  int done = 0;
  for (int i = 0; i < N; i++) {
    memset(&ops[i], 0, sizeof ops[i]);
    ops[i].data = &done;
    snprintf(svc[i], sizeof svc[i], "%d", 1000 + i);
    T_OK(pier_resolve(loop, &ops[i], "127.0.0.1", svc[i], &h, t_count_cb));
  }
  t_run_until_count(loop, &done, N, 10000);
  for (int i = 0; i < N; i++) {
    T_OK(ops[i].status);
    assert_ipv4(ops[i].addrinfo, INADDR_LOOPBACK, (unsigned)(1000 + i));
    pier_freeaddrinfo(ops[i].addrinfo);
  }
  ck_assert_int_eq(done, N);
  t_loop_free(loop);
}
END_TEST

Suite *suite_resolve(void) {
  Suite *s = suite_create("resolve");
  TCase *tc = tcase_create("resolve");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, numeric_ipv4_gives_one_inet_result);
  tcase_add_test(tc, numeric_ipv6_gives_inet6_result);
  tcase_add_test(tc, localhost_with_inet_hints_from_hosts_file);
  tcase_add_test(tc, passive_null_node_gives_wildcard);
  tcase_add_test(tc, non_numeric_name_with_numerichost_gives_eai_noname);
  tcase_add_test(tc, blocking_form_resolves_in_calling_thread);
  tcase_add_test(tc, cancel_right_after_start_completes_exactly_once);
  tcase_add_test(tc, many_resolves_at_once_all_complete);
  suite_add_tcase(s, tc);
  return s;
}
