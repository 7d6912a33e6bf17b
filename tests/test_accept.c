/* SPDX-License-Identifier: MIT */
/*
 * tests/test_accept.c - conditional accept (DESIGN.md section 3.1).
 *
 * Section map
 *   1. small OS helpers (plain client sockets, address comparison)
 *   2. the recording condition function
 *   3. ACCEPT / REJECT per caller port, on tcp4 and tcp6
 *   4. DEFER: ETRYAGAIN, nothing else completes, same request first
 *   5. NULL condition, blocking accept
 */
#include "helpers.h"
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* 1. OS helpers                                                       */
/* ------------------------------------------------------------------ */

static const char *const protos[] = { "tcp4", "tcp6" };

static int port_of(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->sa_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return -1;
}
typedef struct client {
  pier_os_socket h;
  struct sockaddr_storage addr; /* its local address (getsockname) */
  int port;
} client;

static void client_connect(client *c, const struct sockaddr_storage *to,
                           size_t tolen) {
  c->h = t_os_connect(to, tolen);
  ck_assert_msg(c->h != PIER_INVALID_SOCKET, "t_os_connect failed");
  socklen_t l = sizeof c->addr;
  ck_assert_int_eq(getsockname(c->h, (struct sockaddr *)&c->addr, &l), 0);
  c->port = port_of((struct sockaddr *)&c->addr);
  ck_assert_int_gt(c->port, 0);
}

static void os_set_rcvtimeo(pier_os_socket h, int ms) {
  ck_assert_msg(t_os_set_rcvtimeo(h, ms) == 0, "SO_RCVTIMEO: %s",
                t_os_strerror(t_os_errno()));
}

/*
 * A rejected caller never gets a working connection: its recv ends with
 * a reset / refusal / broken pipe, or an orderly 0, and never data.
 */
static void assert_client_rejected(client *c) {
  char b[64];
  os_set_rcvtimeo(c->h, 3000);
  long n = t_os_recv(c->h, b, sizeof b);
  int e = t_os_errno();
  if (n < 0)
    ck_assert_msg(t_os_err_is_conn_lost(e),
                  "rejected client (port %d): recv failed with %d (%s), "
                  "expected reset/refused/pipe", c->port, e,
                  t_os_strerror(e));
  else
    ck_assert_msg(n == 0, "rejected client (port %d) received %ld bytes",
                  c->port, n);
}

/* ------------------------------------------------------------------ */
/* 2. the recording condition function                                 */
/* ------------------------------------------------------------------ */

#define MAX_CALLS 64
#define MAX_RULES 8

typedef struct cond_rec {
  int port;
  int decision;
  struct sockaddr_storage caller;
  int caller_len_ok;   /* caller_len covers the family's sockaddr */
  int local_ok;        /* info->local equals the listener's address */
  int local_family, local_port; /* what info->local said (-1: NULL) */
  int caller_data_null;
} cond_rec;

typedef struct cond_ctx {
  struct sockaddr_storage laddr; /* listener address */
  int ncalls;
  cond_rec rec[MAX_CALLS];
  /* per-port decision sequences: 'A'ccept, 'R'eject, 'D'efer; default A */
  int rule_port[MAX_RULES];
  const char *rule_seq[MAX_RULES];
  int rule_used[MAX_RULES];
  int nrules;
} cond_ctx;

static void cond_rule(cond_ctx *cc, int port, const char *seq) {
  ck_assert_int_lt(cc->nrules, MAX_RULES);
  cc->rule_port[cc->nrules] = port;
  cc->rule_seq[cc->nrules] = seq;
  cc->rule_used[cc->nrules] = 0;
  cc->nrules++;
}

static int recording_cond(pier_accept_info *info, void *ctx) {
  cond_ctx *cc = ctx;
  int port = info->caller ? port_of(info->caller) : -1;
  int decision = PIER_CF_ACCEPT;
  for (int i = 0; i < cc->nrules; i++) {
    if (cc->rule_port[i] != port) continue;
    char d = cc->rule_seq[i][cc->rule_used[i]];
    if (d) cc->rule_used[i]++;
    if (d == 'R') decision = PIER_CF_REJECT;
    else if (d == 'D') decision = PIER_CF_DEFER;
  }
  if (cc->ncalls < MAX_CALLS) {
    cond_rec *r = &cc->rec[cc->ncalls];
    memset(r, 0, sizeof *r);
    r->port = port;
    r->decision = decision;
    if (info->caller && info->caller_len <= sizeof r->caller)
      memcpy(&r->caller, info->caller, info->caller_len);
    r->caller_len_ok = info->caller &&
        info->caller_len >= (info->caller->sa_family == AF_INET6
                                 ? sizeof(struct sockaddr_in6)
                                 : sizeof(struct sockaddr_in));
    r->local_ok = info->local != NULL &&
                  t_addr_eq(info->local, 0, T_SA(&cc->laddr), 0);
    r->local_family = info->local ? info->local->sa_family : -1;
    r->local_port = info->local ? port_of(info->local) : -1;
    r->caller_data_null = info->caller_data == NULL &&
                          info->caller_data_len == 0;
  }
  cc->ncalls++;
  return decision;
}

/* Completion record of accept ops. */
typedef struct acc_res {
  int count;            /* callbacks run */
  int status;
  int order;            /* global completion order, 1-based */
  pier_socket *accepted;
} acc_res;

static volatile int g_order; /* completions so far, all accept ops */

static void acc_cb(pier_op *op, int status) {
  acc_res *r = op->data;
  r->count++;
  r->status = status;
  r->order = ++g_order;
  r->accepted = status == 0 ? op->accepted : NULL;
  ck_assert_int_eq(op->status, status);
}

static void post_accept(pier_socket *l, pier_op *op, acc_res *r,
                        pier_condition_fn cond, void *ctx) {
  memset(r, 0, sizeof *r);
  memset(op, 0, sizeof *op);
  op->data = r;
  T_OK(pier_accept(l, op, cond, ctx, acc_cb));
  ck_assert_int_eq(r->count, 0); /* never from inside the starting call */
}

static void fired_cb(pier_timer *t) { *(volatile int *)t->data = 1; }

/* Run the loop for about ms milliseconds. */
static void run_for(pier_loop *loop, int ms) {
  pier_timer t;
  volatile int fired = 0;
  memset(&t, 0, sizeof t);
  T_OK(pier_timer_init(loop, &t));
  t.data = (void *)&fired;
  T_OK(pier_timer_start(&t, (uint64_t)ms, 0, fired_cb));
  t_run_until(loop, &fired, ms + 5000);
}

/* ------------------------------------------------------------------ */
/* data exchange on an accepted socket                                 */
/* ------------------------------------------------------------------ */

typedef struct io_res { int count, status; size_t bytes; } io_res;

static void io_cb(pier_op *op, int status) {
  io_res *r = op->data;
  r->count++;
  r->status = status;
  r->bytes = op->bytes;
}

/* The accepted socket talks to client c both ways; peer and protocol. */
static void assert_works_with(pier_loop *loop, pier_socket *listener,
                              pier_socket *acc, client *c) {
  ck_assert_ptr_nonnull(acc);

  struct sockaddr_storage peer;
  size_t plen = sizeof peer;
  T_OK(pier_getpeername(acc, &peer, &plen));
  ck_assert_msg(t_addr_eq(T_SA(&peer), 0, T_SA(&c->addr), 0),
                "getpeername port %d, client port %d",
                port_of((struct sockaddr *)&peer), c->port);

  const pier_protocol_info *pl = pier_socket_protocol(listener);
  const pier_protocol_info *pa = pier_socket_protocol(acc);
  ck_assert_ptr_nonnull(pa);
  ck_assert_str_eq(pa->name, pl->name);
  ck_assert_int_eq(pa->family, pl->family);
  ck_assert_int_eq(pa->socktype, pl->socktype);
  ck_assert_int_eq(pa->protocol, pl->protocol);

  /* server -> client */
  char out[100], in[100];
  t_fill(out, sizeof out, (uint64_t)c->port, 0);
  pier_buf b = pier_buf_init(out, sizeof out);
  pier_op op;
  io_res r;
  memset(&op, 0, sizeof op);
  memset(&r, 0, sizeof r);
  op.data = &r;
  T_OK(pier_send(acc, &op, &b, 1, 0, io_cb));
  t_run_until_count(loop, &r.count, 1, 3000);
  ck_assert_int_eq(r.count, 1);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.bytes, sizeof out);
  os_set_rcvtimeo(c->h, 3000);
  size_t got = 0;
  while (got < sizeof in) {
    long n = t_os_recv(c->h, in + got, sizeof in - got);
    ck_assert_msg(n > 0, "client recv returned %ld (%s)", n,
                  t_os_strerror(t_os_errno()));
    got += (size_t)n;
  }
  ck_assert_uint_eq(t_verify(in, sizeof in, (uint64_t)c->port, 0), (size_t)-1);

  /* client -> server */
  t_fill(out, sizeof out, (uint64_t)c->port + 1000, 0);
  ck_assert_int_eq((int)t_os_send(c->h, out, sizeof out), (int)sizeof out);
  got = 0;
  while (got < sizeof in) {
    pier_buf rb = pier_buf_init(in + got, sizeof in - got);
    memset(&op, 0, sizeof op);
    memset(&r, 0, sizeof r);
    op.data = &r;
    T_OK(pier_recv(acc, &op, &rb, 1, 0, io_cb));
    t_run_until_count(loop, &r.count, 1, 3000);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_gt(r.bytes, 0);
    got += r.bytes;
  }
  ck_assert_uint_eq(t_verify(in, sizeof in, (uint64_t)c->port + 1000, 0),
                    (size_t)-1);
}

/* ------------------------------------------------------------------ */
/* 3. ACCEPT / REJECT                                                  */
/* ------------------------------------------------------------------ */

/*
 * Clients A, B, C queued before any accept.  Condition: A accept, B
 * reject, C accept.  The first op gets A; a second op sees B (rejected:
 * the op does not complete), then C, and completes with C.  B is reset.
 * A later client D is still accepted.
 */
START_TEST(test_accept_reject_per_caller_port) {
  const char *proto = protos[_i];
  if (!pier_protocol_find(proto)) return;
  pier_loop *loop = t_loop_new();
  cond_ctx cc;
  memset(&cc, 0, sizeof cc);
  size_t llen;
  pier_socket *l = t_listener(loop, proto, &cc.laddr, &llen);
  ck_assert_ptr_nonnull(l);

  client c[4];
  for (int i = 0; i < 3; i++) client_connect(&c[i], &cc.laddr, llen);
  cond_rule(&cc, c[1].port, "R");

  pier_op op1, op2, op3;
  acc_res r1, r2, r3;
  post_accept(l, &op1, &r1, recording_cond, &cc);
  t_run_until_count(loop, &r1.count, 1, 3000);
  ck_assert_int_eq(r1.count, 1);
  T_OK(r1.status);
  ck_assert_ptr_eq(op1.accepted, r1.accepted);
  ck_assert_int_eq(cc.ncalls, 1);
  ck_assert_int_eq(cc.rec[0].port, c[0].port);

  post_accept(l, &op2, &r2, recording_cond, &cc);
  t_run_until_count(loop, &r2.count, 1, 3000);
  ck_assert_int_eq(r2.count, 1);
  T_OK(r2.status);
  /* the rejected request did not complete op2; op2 went on to C */
  ck_assert_int_eq(cc.ncalls, 3);
  ck_assert_int_eq(cc.rec[1].port, c[1].port);
  ck_assert_int_eq(cc.rec[1].decision, PIER_CF_REJECT);
  ck_assert_int_eq(cc.rec[2].port, c[2].port);

  /* everything the condition saw about each caller */
  for (int i = 0; i < 3; i++) {
    ck_assert_msg(t_addr_eq(T_SA(&cc.rec[i].caller), 0,
                            (struct sockaddr *)&c[i].addr, 0),
                  "call %d: caller address differs from client %d", i, i);
    ck_assert_msg(cc.rec[i].caller_len_ok, "call %d: caller_len too short", i);
    ck_assert_msg(cc.rec[i].local_ok,
                  "call %d: info->local (family %d, port %d) != listener "
                  "(family %d, port %d)", i, cc.rec[i].local_family,
                  cc.rec[i].local_port, cc.laddr.ss_family,
                  port_of((struct sockaddr *)&cc.laddr));
    ck_assert_msg(cc.rec[i].caller_data_null,
                  "call %d: caller_data not NULL on %s", i, proto);
  }

  assert_client_rejected(&c[1]);
  assert_works_with(loop, l, r1.accepted, &c[0]);
  assert_works_with(loop, l, r2.accepted, &c[2]);

  /* the listener keeps working after a rejection */
  client_connect(&c[3], &cc.laddr, llen);
  post_accept(l, &op3, &r3, recording_cond, &cc);
  t_run_until_count(loop, &r3.count, 1, 3000);
  T_OK(r3.status);
  ck_assert_int_eq(cc.ncalls, 4);
  ck_assert_int_eq(cc.rec[3].port, c[3].port);
  assert_works_with(loop, l, r3.accepted, &c[3]);

  /* exactly once each */
  run_for(loop, 50);
  ck_assert_int_eq(r1.count, 1);
  ck_assert_int_eq(r2.count, 1);
  ck_assert_int_eq(r3.count, 1);

  for (int i = 0; i < 4; i++) t_os_close(c[i].h);
  T_OK(pier_close(r1.accepted, NULL));
  T_OK(pier_close(r2.accepted, NULL));
  T_OK(pier_close(r3.accepted, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

/* Several rejections in a row, all before the first accept. */
START_TEST(test_reject_many_then_accept_one_op) {
  pier_loop *loop = t_loop_new();
  cond_ctx cc;
  memset(&cc, 0, sizeof cc);
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &cc.laddr, &llen);
  client c[4];
  for (int i = 0; i < 4; i++) client_connect(&c[i], &cc.laddr, llen);
  for (int i = 0; i < 3; i++) cond_rule(&cc, c[i].port, "R");

  pier_op op;
  acc_res r;
  post_accept(l, &op, &r, recording_cond, &cc);
  t_run_until_count(loop, &r.count, 1, 3000);
  T_OK(r.status);
  ck_assert_int_eq(cc.ncalls, 4);
  for (int i = 0; i < 4; i++) ck_assert_int_eq(cc.rec[i].port, c[i].port);
  for (int i = 0; i < 3; i++) assert_client_rejected(&c[i]);
  assert_works_with(loop, l, r.accepted, &c[3]);
  run_for(loop, 30);
  ck_assert_int_eq(r.count, 1);
  for (int i = 0; i < 4; i++) t_os_close(c[i].h);
  T_OK(pier_close(r.accepted, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 4. DEFER                                                            */
/* ------------------------------------------------------------------ */

/*
 * Clients A, B, C queued; two accept ops pending; the condition defers A
 * once.  The first op completes with ETRYAGAIN; the second does not
 * complete (and the condition is not asked again) while the application
 * has not called pier_accept again, even with the loop running 200 ms.
 * The next pier_accept presents A first; finally A, B and C are each
 * accepted exactly once.
 */
START_TEST(test_defer_blocks_queue_until_accept_again) {
  pier_loop *loop = t_loop_new();
  cond_ctx cc;
  memset(&cc, 0, sizeof cc);
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &cc.laddr, &llen);
  client c[3];
  for (int i = 0; i < 3; i++) client_connect(&c[i], &cc.laddr, llen);
  cond_rule(&cc, c[0].port, "DA");

  pier_op op1, op2, op3, op4;
  acc_res r1, r2, r3, r4;
  g_order = 0;
  post_accept(l, &op1, &r1, recording_cond, &cc);
  post_accept(l, &op2, &r2, recording_cond, &cc);
  t_run_until_count(loop, &r1.count, 1, 3000);
  ck_assert_int_eq(r1.count, 1);
  T_ERR(r1.status, PIER_ETRYAGAIN);
  ck_assert_int_eq(op1.status, PIER_ETRYAGAIN);
  ck_assert_int_eq(cc.ncalls, 1);
  ck_assert_int_eq(cc.rec[0].port, c[0].port);
  ck_assert_int_eq(cc.rec[0].decision, PIER_CF_DEFER);

  /* nothing else completes until pier_accept is called again */
  run_for(loop, 200);
  ck_assert_msg(r2.count == 0,
                "second accept completed (status %s) after a DEFER without "
                "a new pier_accept call", pier_err_name(r2.status));
  ck_assert_int_eq(r1.count, 1);
  ck_assert_msg(cc.ncalls == 1,
                "condition called %d times while the queue was deferred "
                "(last port %d)", cc.ncalls, cc.rec[cc.ncalls - 1].port);

  /* accept again: the same request (A) is presented first */
  post_accept(l, &op3, &r3, recording_cond, &cc);
  t_run_until_count(loop, &g_order, 3, 3000);
  ck_assert_int_eq(r2.count, 1);
  ck_assert_int_eq(r3.count, 1);
  T_OK(r2.status);
  T_OK(r3.status);
  ck_assert_int_ge(cc.ncalls, 2);
  ck_assert_msg(cc.rec[1].port == c[0].port,
                "after DEFER the next request presented was port %d, "
                "expected the deferred port %d", cc.rec[1].port, c[0].port);
  ck_assert_int_eq(cc.rec[1].decision, PIER_CF_ACCEPT);

  /* the third client */
  post_accept(l, &op4, &r4, recording_cond, &cc);
  t_run_until_count(loop, &r4.count, 1, 3000);
  T_OK(r4.status);
  ck_assert_int_eq(cc.ncalls, 4);

  /* A, B and C accepted exactly once each */
  pier_socket *acc[3] = { r2.accepted, r3.accepted, r4.accepted };
  int seen[3] = { 0, 0, 0 };
  for (int k = 0; k < 3; k++) {
    ck_assert_ptr_nonnull(acc[k]);
    struct sockaddr_storage peer;
    size_t plen = sizeof peer;
    T_OK(pier_getpeername(acc[k], &peer, &plen));
    int match = -1;
    for (int i = 0; i < 3; i++)
      if (t_addr_eq(T_SA(&peer), 0, T_SA(&c[i].addr), 0))
        match = i;
    ck_assert_msg(match >= 0, "accepted socket %d has unknown peer port %d", k,
                  port_of((struct sockaddr *)&peer));
    seen[match]++;
    assert_works_with(loop, l, acc[k], &c[match]);
  }
  for (int i = 0; i < 3; i++)
    ck_assert_msg(seen[i] == 1, "client %d (port %d) accepted %d times", i,
                  c[i].port, seen[i]);

  run_for(loop, 30);
  ck_assert_int_eq(r1.count + r2.count + r3.count + r4.count, 4);
  for (int i = 0; i < 3; i++) t_os_close(c[i].h);
  for (int k = 0; k < 3; k++) T_OK(pier_close(acc[k], NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

/* DEFER, then the same op is restarted and gets the same caller. */
START_TEST(test_defer_same_op_restarted_gets_same_request) {
  pier_loop *loop = t_loop_new();
  cond_ctx cc;
  memset(&cc, 0, sizeof cc);
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &cc.laddr, &llen);
  client c[2];
  for (int i = 0; i < 2; i++) client_connect(&c[i], &cc.laddr, llen);
  cond_rule(&cc, c[0].port, "DDA");

  pier_op op;
  acc_res r;
  memset(&op, 0, sizeof op);
  memset(&r, 0, sizeof r);
  op.data = &r;
  for (int round = 0; round < 2; round++) {
    r.count = 0;
    T_OK(pier_accept(l, &op, recording_cond, &cc, acc_cb));
    t_run_until_count(loop, &r.count, 1, 3000);
    T_ERR(r.status, PIER_ETRYAGAIN);
    ck_assert_int_eq(cc.ncalls, round + 1);
    ck_assert_int_eq(cc.rec[round].port, c[0].port);
  }
  r.count = 0;
  T_OK(pier_accept(l, &op, recording_cond, &cc, acc_cb));
  t_run_until_count(loop, &r.count, 1, 3000);
  T_OK(r.status);
  ck_assert_int_eq(cc.ncalls, 3);
  ck_assert_int_eq(cc.rec[2].port, c[0].port);
  assert_works_with(loop, l, r.accepted, &c[0]);
  pier_socket *a0 = r.accepted;

  r.count = 0;
  T_OK(pier_accept(l, &op, recording_cond, &cc, acc_cb));
  t_run_until_count(loop, &r.count, 1, 3000);
  T_OK(r.status);
  ck_assert_int_eq(cc.rec[3].port, c[1].port);
  assert_works_with(loop, l, r.accepted, &c[1]);

  for (int i = 0; i < 2; i++) t_os_close(c[i].h);
  T_OK(pier_close(a0, NULL));
  T_OK(pier_close(r.accepted, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 5. NULL condition, blocking accept                                  */
/* ------------------------------------------------------------------ */

START_TEST(test_null_condition_accepts_all) {
  const char *proto = protos[_i];
  if (!pier_protocol_find(proto)) return;
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage la;
  size_t llen;
  pier_socket *l = t_listener(loop, proto, &la, &llen);
  client c[3];
  for (int i = 0; i < 3; i++) client_connect(&c[i], &la, llen);
  pier_op op[3];
  acc_res r[3];
  g_order = 0;
  for (int i = 0; i < 3; i++) post_accept(l, &op[i], &r[i], NULL, NULL);
  t_run_until_count(loop, &g_order, 3, 3000);
  ck_assert_int_eq(r[0].count + r[1].count + r[2].count, 3);
  int seen[3] = { 0, 0, 0 };
  for (int k = 0; k < 3; k++) {
    T_OK(r[k].status);
    ck_assert_ptr_nonnull(r[k].accepted);
    struct sockaddr_storage peer;
    size_t plen = sizeof peer;
    T_OK(pier_getpeername(r[k].accepted, &peer, &plen));
    for (int i = 0; i < 3; i++)
      if (t_addr_eq(T_SA(&peer), 0, T_SA(&c[i].addr), 0)) {
        seen[i]++;
        assert_works_with(loop, l, r[k].accepted, &c[i]);
      }
  }
  for (int i = 0; i < 3; i++) ck_assert_int_eq(seen[i], 1);
  for (int i = 0; i < 3; i++) t_os_close(c[i].h);
  for (int k = 0; k < 3; k++) T_OK(pier_close(r[k].accepted, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

/*
 * However many accepts the provider keeps posted (IOCP's AcceptEx; the
 * others only keep the number), every caller is accepted exactly once:
 * callers queued before the accepts were posted and callers arriving
 * while they wait.
 */
START_TEST(test_preposted_accept_count_accepts_every_caller_once) {
  static const int counts[] = { 1, 3, 16 };
  enum { N = 6 };
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage la;
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &la, &llen);
  int v = 0;
  T_OK(pier_setsockopt(l, PIER_SO_PREPOSTED_ACCEPTS, counts[_i]));
  T_OK(pier_getsockopt(l, PIER_SO_PREPOSTED_ACCEPTS, &v));
  ck_assert_int_eq(v, counts[_i]);
  client c[N];
  for (int i = 0; i < N / 2; i++) client_connect(&c[i], &la, llen);
  pier_op op[N];
  acc_res r[N];
  g_order = 0;
  for (int k = 0; k < N; k++) post_accept(l, &op[k], &r[k], NULL, NULL);
  t_run_until_count(loop, &g_order, N / 2, 3000);
  for (int i = N / 2; i < N; i++) client_connect(&c[i], &la, llen);
  t_run_until_count(loop, &g_order, N, 3000);
  int seen[N] = { 0 };
  for (int k = 0; k < N; k++) {
    ck_assert_int_eq(r[k].count, 1);
    T_OK(r[k].status);
    struct sockaddr_storage peer;
    size_t plen = sizeof peer;
    T_OK(pier_getpeername(r[k].accepted, &peer, &plen));
    for (int i = 0; i < N; i++)
      if (t_addr_eq(T_SA(&peer), 0, T_SA(&c[i].addr), 0)) {
        seen[i]++;
        assert_works_with(loop, l, r[k].accepted, &c[i]);
      }
  }
  for (int i = 0; i < N; i++) ck_assert_int_eq(seen[i], 1);
  for (int i = 0; i < N; i++) t_os_close(c[i].h);
  for (int k = 0; k < N; k++) T_OK(pier_close(r[k].accepted, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

/* cb == NULL on a blocking listener with a client queued. */
START_TEST(test_blocking_accept_returns_socket) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage la;
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &la, &llen);
  client c;
  client_connect(&c, &la, llen);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_accept(l, &op, NULL, NULL, NULL));
  T_OK(op.status);
  ck_assert_ptr_nonnull(op.accepted);
  assert_works_with(loop, l, op.accepted, &c);
  t_os_close(c.h);
  T_OK(pier_close(op.accepted, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

/* Blocking accept with a condition: rejects the first, returns the second. */
START_TEST(test_blocking_accept_with_condition_skips_rejected) {
  pier_loop *loop = t_loop_new();
  cond_ctx cc;
  memset(&cc, 0, sizeof cc);
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &cc.laddr, &llen);
  client c[2];
  for (int i = 0; i < 2; i++) client_connect(&c[i], &cc.laddr, llen);
  cond_rule(&cc, c[0].port, "R");
  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_accept(l, &op, recording_cond, &cc, NULL));
  ck_assert_ptr_nonnull(op.accepted);
  ck_assert_int_eq(cc.ncalls, 2);
  ck_assert_int_eq(cc.rec[0].port, c[0].port);
  ck_assert_int_eq(cc.rec[1].port, c[1].port);
  assert_client_rejected(&c[0]);
  assert_works_with(loop, l, op.accepted, &c[1]);
  for (int i = 0; i < 2; i++) t_os_close(c[i].h);
  T_OK(pier_close(op.accepted, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

Suite *suite_accept(void) {
  Suite *s = suite_create("accept");
  TCase *tc;

  tc = tcase_create("accept_reject_per_caller_port");
  tcase_set_timeout(tc, 20);
  tcase_add_loop_test(tc, test_accept_reject_per_caller_port, 0, 2);
  tcase_add_test(tc, test_reject_many_then_accept_one_op);
  suite_add_tcase(s, tc);

  tc = tcase_create("defer");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_defer_blocks_queue_until_accept_again);
  tcase_add_test(tc, test_defer_same_op_restarted_gets_same_request);
  suite_add_tcase(s, tc);

  tc = tcase_create("null_condition_and_blocking");
  tcase_set_timeout(tc, 20);
  tcase_add_loop_test(tc, test_null_condition_accepts_all, 0, 2);
  tcase_add_loop_test(tc, test_preposted_accept_count_accepts_every_caller_once,
                      0, 3);
  tcase_add_test(tc, test_blocking_accept_returns_socket);
  tcase_add_test(tc, test_blocking_accept_with_condition_skips_rejected);
  suite_add_tcase(s, tc);
  return s;
}
