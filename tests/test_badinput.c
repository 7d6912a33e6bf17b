/* SPDX-License-Identifier: MIT */
/*
 * tests/test_badinput.c - bad arguments and bad states: NULL or invalid
 * arguments to every public call give PIER_EINVAL and change nothing;
 * empty or NULL buffer arrays; send/recv on a listener; accept on a socket
 * that is not listening or on udp; listen on udp; an op already pending
 * (which still completes normally); calls on a closing socket; double
 * close; connect data on tcp; cancel of an idle op; a closed loop.  After
 * each refusal the test proves, where cheap, that nothing changed.
 */
#include "helpers.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* fixture: a loop and a connected tcp4 pair                           */
/* ------------------------------------------------------------------ */

typedef struct fx {
  pier_loop *loop;
  pier_socket *c, *s;
  pier_op op; /* the op handed to refused calls */
  int done;
  char buf[32];
  pier_buf b;
} fx;

static void fx_setup(fx *f) {
  memset(f, 0, sizeof *f);
  f->loop = t_loop_new();
  t_pair(f->loop, "tcp4", &f->c, &f->s);
  f->op.data = &f->done;
  f->b = pier_buf_init(f->buf, sizeof f->buf);
}

static void noop_timer_cb(pier_timer *t) { (void)t; }

static void close_count_cb(pier_socket *s) {
  (*(int *)pier_socket_get_data(s))++;
}

static void close_wait(pier_loop *loop, pier_socket *s) {
  int closed = 0;
  pier_socket_set_data(s, &closed);
  T_OK(pier_close(s, close_count_cb));
  t_run_until(loop, &closed, 2000);
}

static void fx_teardown(fx *f) {
  close_wait(f->loop, f->c);
  close_wait(f->loop, f->s);
  t_loop_free(f->loop);
}

/*
 * Prove the pair still works and f->op was left idle: reuse f->op for a
 * real receive on s of bytes sent from c.
 */
static void fx_still_works(fx *f) {
  pier_op sop;
  int sent = 0;
  pier_buf sb = pier_buf_init("ping", 4);
  memset(&sop, 0, sizeof sop);
  sop.data = &sent;
  f->done = 0;
  T_OK(pier_recv(f->s, &f->op, &f->b, 1, 0, t_count_cb));
  T_OK(pier_send(f->c, &sop, &sb, 1, 0, t_count_cb));
  t_run_until(f->loop, &f->done, 3000);
  t_run_until(f->loop, &sent, 3000);
  T_OK(f->op.status);
  ck_assert_uint_eq(f->op.bytes, 4);
  ck_assert_int_eq(memcmp(f->buf, "ping", 4), 0);
}

/* ------------------------------------------------------------------ */
/* NULL / invalid arguments                                            */
/* ------------------------------------------------------------------ */

START_TEST(loop_calls_with_null_give_einval) {
  pier_loop *loop = t_loop_new();
  pier_timer t;
  memset(&t, 0, sizeof t);
  T_ERR(pier_loop_new(NULL, NULL), PIER_EINVAL);
  T_ERR(pier_loop_close(NULL), PIER_EINVAL);
  T_ERR(pier_loop_free(NULL), PIER_EINVAL);
  T_ERR(pier_loop_run(NULL, PIER_RUN_NOWAIT), PIER_EINVAL);
  T_ERR(pier_loop_stop(NULL), PIER_EINVAL);
  T_ERR(pier_loop_ref(NULL), PIER_EINVAL);
  T_ERR(pier_loop_unref(NULL), PIER_EINVAL);
  T_ERR(pier_timer_init(NULL, &t), PIER_EINVAL);
  T_ERR(pier_timer_init(loop, NULL), PIER_EINVAL);
  T_ERR(pier_timer_start(NULL, 1, 0, noop_timer_cb), PIER_EINVAL);
  T_ERR(pier_timer_stop(NULL), PIER_EINVAL);
  T_OK(pier_timer_init(loop, &t));
  T_ERR(pier_timer_start(&t, 1, 0, NULL), PIER_EINVAL);
  ck_assert_int_eq(pier_timer_active(&t), 0);
  /* nothing was made alive by the refused calls */
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
  T_OK(pier_loop_free(loop));
}
END_TEST

START_TEST(socket_open_and_adopt_with_bad_args_give_einval) {
  pier_loop *loop = t_loop_new();
  const pier_protocol_info *tcp4 = pier_protocol_find("tcp4");
  pier_socket *s = NULL;
  T_ERR(pier_socket_open(NULL, tcp4, 0, &s), PIER_EINVAL);
  T_ERR(pier_socket_open(loop, NULL, 0, &s), PIER_EINVAL);
  T_ERR(pier_socket_open(loop, tcp4, 0, NULL), PIER_EINVAL);
  T_ERR(pier_socket_adopt(NULL, 0, 0, &s), PIER_EINVAL);
  T_ERR(pier_socket_adopt(loop, PIER_INVALID_SOCKET, 0, &s), PIER_EINVAL);
  ck_assert_ptr_null(s);
  /* nothing was created: the loop frees at once */
  T_OK(pier_loop_free(loop));
}
END_TEST

START_TEST(socket_calls_with_null_give_einval) {
  fx f;
  struct sockaddr_storage a;
  size_t len = sizeof a;
  int v = 0;
  fx_setup(&f);
  T_ERR(pier_bind(NULL, (struct sockaddr *)&a, sizeof a), PIER_EINVAL);
  T_ERR(pier_bind(f.c, NULL, sizeof a), PIER_EINVAL);
  T_ERR(pier_listen(NULL, 4), PIER_EINVAL);
  T_ERR(pier_close(NULL, NULL), PIER_EINVAL);
  T_ERR(pier_shutdown(NULL, PIER_SHUT_WR), PIER_EINVAL);
  T_ERR(pier_shutdown(f.c, 3), PIER_EINVAL);
  T_ERR(pier_shutdown(f.c, -1), PIER_EINVAL);
  T_ERR(pier_getsockname(NULL, &a, &len), PIER_EINVAL);
  T_ERR(pier_getsockname(f.c, NULL, &len), PIER_EINVAL);
  T_ERR(pier_getsockname(f.c, &a, NULL), PIER_EINVAL);
  T_ERR(pier_getpeername(NULL, &a, &len), PIER_EINVAL);
  T_ERR(pier_getpeername(f.c, NULL, &len), PIER_EINVAL);
  T_ERR(pier_getpeername(f.c, &a, NULL), PIER_EINVAL);
  T_ERR(pier_ioctl(NULL, PIER_FIONREAD, &len), PIER_EINVAL);
  T_ERR(pier_ioctl(f.c, PIER_FIONREAD, NULL), PIER_EINVAL);
  T_ERR(pier_ioctl(f.c, 999, &v), PIER_EINVAL);
  T_ERR(pier_ioctl(f.c, 0, &v), PIER_EINVAL);
  T_ERR(pier_setsockopt_raw(NULL, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v),
        PIER_EINVAL);
  T_ERR(pier_getsockopt_raw(NULL, SOL_SOCKET, SO_KEEPALIVE, &v, &len),
        PIER_EINVAL);
  fx_still_works(&f); /* no shutdown happened, nothing closed */
  fx_teardown(&f);
}
END_TEST

START_TEST(bind_with_short_address_gives_einval) {
  fx f;
  struct sockaddr_storage a;
  size_t len;
  pier_socket *s = NULL;
  fx_setup(&f);
  T_OK(pier_socket_open(f.loop, pier_protocol_find("tcp4"), 0, &s));
  t_loopback("tcp4", &a, &len);
  T_ERR(pier_bind(s, (struct sockaddr *)&a, 0), PIER_EINVAL);
  T_ERR(pier_bind(s, (struct sockaddr *)&a, 2), PIER_EINVAL);
  T_OK(pier_bind(s, (struct sockaddr *)&a, len)); /* still unbound before */
  close_wait(f.loop, s);
  fx_teardown(&f);
}
END_TEST

START_TEST(op_calls_with_null_give_einval_and_leave_op_idle) {
  fx f;
  struct sockaddr_storage a, from;
  size_t len;
  fx_setup(&f);
  t_loopback("tcp4", &a, &len);
  T_ERR(pier_accept(NULL, &f.op, NULL, NULL, t_count_cb), PIER_EINVAL);
  T_ERR(pier_connect(NULL, &f.op, (struct sockaddr *)&a, len, NULL, NULL,
                     t_count_cb), PIER_EINVAL);
  T_ERR(pier_connect(f.c, NULL, (struct sockaddr *)&a, len, NULL, NULL,
                     t_count_cb), PIER_EINVAL);
  T_ERR(pier_connect(f.c, &f.op, NULL, len, NULL, NULL, t_count_cb),
        PIER_EINVAL);
  T_ERR(pier_recv(NULL, &f.op, &f.b, 1, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_recv(f.s, NULL, &f.b, 1, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_recvfrom(NULL, &f.op, &f.b, 1, 0, &from, t_count_cb),
        PIER_EINVAL);
  T_ERR(pier_recvfrom(f.s, NULL, &f.b, 1, 0, &from, t_count_cb), PIER_EINVAL);
  T_ERR(pier_send(NULL, &f.op, &f.b, 1, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_send(f.c, NULL, &f.b, 1, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_sendto(NULL, &f.op, &f.b, 1, 0, (struct sockaddr *)&a, len,
                    t_count_cb), PIER_EINVAL);
  T_ERR(pier_sendto(f.c, NULL, &f.b, 1, 0, (struct sockaddr *)&a, len,
                    t_count_cb), PIER_EINVAL);
  T_ERR(pier_cancel(NULL), PIER_EINVAL);
  T_ERR(pier_cancel_blocking(NULL), PIER_EINVAL);
  T_ERR(pier_op_result(NULL, 0, NULL, NULL), PIER_EINVAL);
  T_ERR(pier_resolve(NULL, &f.op, "127.0.0.1", "80", NULL, t_count_cb),
        PIER_EINVAL);
  T_ERR(pier_resolve(f.loop, NULL, "127.0.0.1", "80", NULL, t_count_cb),
        PIER_EINVAL);
  pier_freeaddrinfo(NULL); /* documented no-op */
  ck_assert_int_eq(f.done, 0);
  fx_still_works(&f);
  fx_teardown(&f);
}
END_TEST

START_TEST(zero_or_null_buffer_arrays_give_einval) {
  fx f;
  struct sockaddr_storage a;
  size_t len = sizeof a;
  fx_setup(&f);
  T_OK(pier_getpeername(f.c, &a, &len));
  T_ERR(pier_recv(f.s, &f.op, &f.b, 0, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_recv(f.s, &f.op, NULL, 1, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_recvfrom(f.s, &f.op, &f.b, 0, 0, NULL, t_count_cb), PIER_EINVAL);
  T_ERR(pier_recvfrom(f.s, &f.op, NULL, 2, 0, NULL, t_count_cb), PIER_EINVAL);
  T_ERR(pier_send(f.c, &f.op, &f.b, 0, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_send(f.c, &f.op, NULL, 1, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_sendto(f.c, &f.op, &f.b, 0, 0, (struct sockaddr *)&a, len,
                    t_count_cb), PIER_EINVAL);
  T_ERR(pier_sendto(f.c, &f.op, NULL, 1, 0, (struct sockaddr *)&a, len,
                    t_count_cb), PIER_EINVAL);
  /* blocking forms check the same way */
  T_ERR(pier_recv(f.s, &f.op, &f.b, 0, 0, NULL), PIER_EINVAL);
  T_ERR(pier_send(f.c, &f.op, NULL, 1, 0, NULL), PIER_EINVAL);
  ck_assert_int_eq(f.done, 0);
  fx_still_works(&f);
  fx_teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* wrong socket state or protocol                                      */
/* ------------------------------------------------------------------ */

START_TEST(send_recv_on_listener_give_enotconn) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage a;
  size_t len;
  pier_socket *l = t_listener(loop, "tcp4", &a, &len);
  pier_op op;
  char buf[4];
  pier_buf b = pier_buf_init(buf, sizeof buf);
  int done = 0;
  memset(&op, 0, sizeof op);
  op.data = &done;
  T_ERR(pier_send(l, &op, &b, 1, 0, t_count_cb), PIER_ENOTCONN);
  T_ERR(pier_recv(l, &op, &b, 1, 0, t_count_cb), PIER_ENOTCONN);
  /* the listener still accepts, with the same op */
  pier_os_socket c = t_os_connect(&a, len);
  T_OK(pier_accept(l, &op, NULL, NULL, t_count_cb));
  t_run_until(loop, &done, 3000);
  T_OK(op.status);
  close_wait(loop, op.accepted);
  t_os_close(c);
  close_wait(loop, l);
  t_loop_free(loop);
}
END_TEST

/*
 * On a socket never connected, accept PIER_ENOTCONN either at once or as
 * the completion status (the core may leave it to the OS).
 */
static void send_or_recv_enotconn(pier_loop *loop, pier_socket *s, pier_op *op,
                                  pier_buf *b, int send) {
  int done = 0;
  op->data = &done;
  int rc = send ? pier_send(s, op, b, 1, 0, t_count_cb)
                : pier_recv(s, op, b, 1, 0, t_count_cb);
  if (rc == 0) {
    t_run_until(loop, &done, 2000);
    rc = op->status;
  }
  T_ERR(rc, PIER_ENOTCONN);
}

START_TEST(send_recv_on_unconnected_tcp_give_enotconn) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  pier_op op;
  char buf[4];
  pier_buf b = pier_buf_init(buf, sizeof buf);
  memset(&op, 0, sizeof op);
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s));
  send_or_recv_enotconn(loop, s, &op, &b, 1);
  send_or_recv_enotconn(loop, s, &op, &b, 0);
  close_wait(loop, s);
  t_loop_free(loop);
}
END_TEST

START_TEST(accept_on_socket_not_listening_gives_einval) {
  fx f;
  pier_socket *s = NULL;
  struct sockaddr_storage a;
  size_t len;
  fx_setup(&f);
  T_OK(pier_socket_open(f.loop, pier_protocol_find("tcp4"), 0, &s));
  T_ERR(pier_accept(s, &f.op, NULL, NULL, t_count_cb), PIER_EINVAL);
  t_loopback("tcp4", &a, &len);
  T_OK(pier_bind(s, (struct sockaddr *)&a, len));
  T_ERR(pier_accept(s, &f.op, NULL, NULL, t_count_cb), PIER_EINVAL);
  T_ERR(pier_accept(f.s, &f.op, NULL, NULL, t_count_cb), PIER_EINVAL);
  close_wait(f.loop, s);
  ck_assert_int_eq(f.done, 0);
  fx_still_works(&f);
  fx_teardown(&f);
}
END_TEST

START_TEST(accept_and_listen_on_udp_give_eopnotsupp) {
  pier_loop *loop = t_loop_new();
  pier_socket *u = NULL;
  struct sockaddr_storage a;
  size_t len;
  pier_op op;
  int done = 0;
  memset(&op, 0, sizeof op);
  op.data = &done;
  T_OK(pier_socket_open(loop, pier_protocol_find("udp4"), 0, &u));
  t_loopback("udp4", &a, &len);
  T_OK(pier_bind(u, (struct sockaddr *)&a, len));
  T_ERR(pier_listen(u, 4), PIER_EOPNOTSUPP);
  T_ERR(pier_accept(u, &op, NULL, NULL, t_count_cb), PIER_EOPNOTSUPP);
  T_ERR(pier_accept(u, &op, NULL, NULL, NULL), PIER_EOPNOTSUPP);
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
  ck_assert_int_eq(done, 0);
  close_wait(loop, u);
  t_loop_free(loop);
}
END_TEST

START_TEST(starting_a_pending_op_gives_ebusy_and_it_completes_once) {
  fx f;
  pier_op sop;
  int sent = 0;
  pier_buf sb = pier_buf_init("abc", 3);
  fx_setup(&f);
  memset(&sop, 0, sizeof sop);
  sop.data = &sent;
  T_OK(pier_recv(f.s, &f.op, &f.b, 1, 0, t_count_cb));
  T_ERR(pier_recv(f.s, &f.op, &f.b, 1, 0, t_count_cb), PIER_EBUSY);
  T_ERR(pier_send(f.c, &f.op, &sb, 1, 0, t_count_cb), PIER_EBUSY);
  T_ERR(pier_loop_post(f.loop, &f.op, t_count_cb), PIER_EBUSY);
  T_ERR(pier_resolve(f.loop, &f.op, "127.0.0.1", NULL, NULL, t_count_cb),
        PIER_EBUSY);
  T_OK(pier_send(f.c, &sop, &sb, 1, 0, t_count_cb));
  t_run_until(f.loop, &f.done, 3000);
  t_run_until(f.loop, &sent, 3000);
  for (int i = 0; i < 5; i++) pier_loop_run(f.loop, PIER_RUN_NOWAIT);
  ck_assert_int_eq(f.done, 1);
  T_OK(f.op.status);
  ck_assert_uint_eq(f.op.bytes, 3);
  ck_assert_int_eq(memcmp(f.buf, "abc", 3), 0);
  fx_teardown(&f);
}
END_TEST

START_TEST(calls_on_closing_socket_give_ebadf) {
  fx f;
  struct sockaddr_storage a;
  size_t len = sizeof a, n = 0;
  int closed = 0, v = 0;
  fx_setup(&f);
  pier_socket_set_data(f.c, &closed);
  T_OK(pier_close(f.c, close_count_cb));
  T_ERR(pier_recv(f.c, &f.op, &f.b, 1, 0, t_count_cb), PIER_EBADF);
  T_ERR(pier_send(f.c, &f.op, &f.b, 1, 0, t_count_cb), PIER_EBADF);
  T_ERR(pier_shutdown(f.c, PIER_SHUT_WR), PIER_EBADF);
  T_ERR(pier_getsockname(f.c, &a, &len), PIER_EBADF);
  T_ERR(pier_getpeername(f.c, &a, &len), PIER_EBADF);
  T_ERR(pier_setsockopt(f.c, PIER_SO_NODELAY, 1), PIER_EBADF);
  T_ERR(pier_getsockopt(f.c, PIER_SO_NODELAY, &v), PIER_EBADF);
  T_ERR(pier_ioctl(f.c, PIER_FIONREAD, &n), PIER_EBADF);
  T_ERR(pier_listen(f.c, 4), PIER_EBADF);
  T_ERR(pier_close(f.c, close_count_cb), PIER_EALREADY);
  t_run_until(f.loop, &closed, 2000);
  for (int i = 0; i < 5; i++) pier_loop_run(f.loop, PIER_RUN_NOWAIT);
  ck_assert_int_eq(closed, 1);
  ck_assert_int_eq(f.done, 0);
  close_wait(f.loop, f.s);
  t_loop_free(f.loop);
}
END_TEST

START_TEST(connect_data_on_tcp_gives_eopnotsupp) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage a;
  size_t len;
  pier_socket *l = t_listener(loop, "tcp4", &a, &len), *c = NULL;
  pier_connect_data cd;
  pier_op op, aop;
  int done = 0;
  memset(&cd, 0, sizeof cd);
  cd.caller = "hi";
  cd.caller_len = 2;
  memset(&op, 0, sizeof op);
  memset(&aop, 0, sizeof aop);
  op.data = aop.data = &done;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &c));
  T_ERR(pier_connect(c, &op, (struct sockaddr *)&a, len, &cd, NULL,
                     t_count_cb), PIER_EOPNOTSUPP);
  /* nothing was started: the same op connects without data */
  T_OK(pier_accept(l, &aop, NULL, NULL, t_count_cb));
  T_OK(pier_connect(c, &op, (struct sockaddr *)&a, len, NULL, NULL,
                    t_count_cb));
  t_run_until_count(loop, &done, 2, 3000);
  T_OK(op.status);
  T_OK(aop.status);
  close_wait(loop, aop.accepted);
  close_wait(loop, c);
  close_wait(loop, l);
  t_loop_free(loop);
}
END_TEST

START_TEST(cancel_of_idle_op_gives_enoent) {
  fx f;
  pier_op never;
  fx_setup(&f);
  memset(&never, 0, sizeof never);
  T_ERR(pier_cancel(&never), PIER_ENOENT);
  T_ERR(pier_cancel_blocking(f.s), PIER_ENOENT);
  fx_still_works(&f);
  T_ERR(pier_cancel(&f.op), PIER_ENOENT); /* completed: idle again */
  fx_teardown(&f);
}
END_TEST

START_TEST(closed_loop_gives_eshutdown) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  pier_timer t;
  pier_op op;
  int done = 0;
  memset(&op, 0, sizeof op);
  op.data = &done;
  T_OK(pier_timer_init(loop, &t));
  T_OK(pier_loop_close(loop));
  T_ERR(pier_socket_open(loop, pier_protocol_find("udp6"), 0, &s),
        PIER_ESHUTDOWN);
  T_ERR(pier_timer_start(&t, 0, 0, noop_timer_cb),
        PIER_ESHUTDOWN);
  T_ERR(pier_loop_post(loop, &op, t_count_cb), PIER_ESHUTDOWN);
  {
    pier_os_socket h = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert(h != PIER_INVALID_SOCKET);
    T_ERR(pier_socket_adopt(loop, h, 0, &s), PIER_ESHUTDOWN);
    ck_assert_int_eq(t_os_close(h), 0); /* the caller kept it */
  }
  ck_assert_ptr_null(s);
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
  ck_assert_int_eq(done, 0);
  T_OK(pier_loop_free(loop));
}
END_TEST

Suite *suite_badinput(void) {
  Suite *s = suite_create("badinput");
  TCase *tc = tcase_create("args");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, loop_calls_with_null_give_einval);
  tcase_add_test(tc, socket_open_and_adopt_with_bad_args_give_einval);
  tcase_add_test(tc, socket_calls_with_null_give_einval);
  tcase_add_test(tc, bind_with_short_address_gives_einval);
  tcase_add_test(tc, op_calls_with_null_give_einval_and_leave_op_idle);
  tcase_add_test(tc, zero_or_null_buffer_arrays_give_einval);
  suite_add_tcase(s, tc);

  tc = tcase_create("state");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, send_recv_on_listener_give_enotconn);
  tcase_add_test(tc, send_recv_on_unconnected_tcp_give_enotconn);
  tcase_add_test(tc, accept_on_socket_not_listening_gives_einval);
  tcase_add_test(tc, accept_and_listen_on_udp_give_eopnotsupp);
  tcase_add_test(tc, starting_a_pending_op_gives_ebusy_and_it_completes_once);
  tcase_add_test(tc, calls_on_closing_socket_give_ebadf);
  tcase_add_test(tc, connect_data_on_tcp_gives_eopnotsupp);
  tcase_add_test(tc, cancel_of_idle_op_gives_enoent);
  tcase_add_test(tc, closed_loop_gives_eshutdown);
  suite_add_tcase(s, tc);
  return s;
}
