/*
 * bench/pier.c - the echo server and client on pier, written the way
 * examples/demo.c teaches: caller-owned pier_op operations with
 * callbacks, one loop, pier_loop_run.  The provider is the default one or
 * $PIER_BACKEND; the result line names it.
 *
 * The server keeps one pier_op per connection and uses it for a receive,
 * then the send of the echo, then the next receive.  The client keeps a
 * receive and a send pending at the same time, on two ops.
 *
 * For the idle-memory workload, pier's own allocations are counted
 * through pier_set_allocator, and - separately - those of the libevent
 * its POSIX provider runs on, through event_set_mem_functions.
 */
#define _GNU_SOURCE
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <pier.h>

typedef struct conn {
  pier_socket *s;
  pier_op op;             /* receive, send the echo, receive, ... */
  char *buf;              /* echo: BENCH_BUF_SIZE bytes; idle: probe */
  char probe[16];         /* idle: the receive pending while idle */
} conn;

typedef struct cconn {
  pier_socket *s;
  pier_op connect_op, send_op, recv_op;
  int sending;            /* send_op is pending */
  char *buf;
  bench_flow flow;
} cconn;

static pier_loop *loop;
static const bench_params *params;
static pier_socket *listener;
static pier_op accept_op;
static pier_timer timer;
static int accepted;

static void check(const char *what, int rc) {
  if (rc != 0) bench_die("%s: %s (%s)", what, pier_strerror(rc), pier_err_name(rc));
}

/* pier prints nothing itself; show its warnings and errors. */
static void log_to_stderr(int level, const char *message, void *ctx) {
  (void)ctx;
  if (level <= PIER_LOG_WARN) fprintf(stderr, "pier: %s\n", message);
}

static void count_allocs(void) {
  static const pier_allocator counting = {bench_lib_malloc, bench_lib_realloc,
                                          bench_lib_calloc, bench_lib_free};
  /* Both before the loop exists, so every allocation after it counts. */
  check("pier_set_allocator", pier_set_allocator(&counting));
  event_set_mem_functions(bench_sub_malloc, bench_sub_realloc, bench_sub_free);
  bench_lib_how = "pier_set_allocator";
  bench_sub_used = 1;
}

static void new_loop(void) {
  pier_set_log(log_to_stderr, NULL);
  check("pier_loop_new", pier_loop_new(NULL, &loop));
  bench_variant = pier_loop_backend(loop);
}

/* ------------------------------------------------------------------ */
/* server                                                              */
/* ------------------------------------------------------------------ */

static void on_recv(pier_op *op, int status);

static void on_closed(pier_socket *s) {
  conn *c = pier_socket_get_data(s);
  if (c->buf != c->probe) free(c->buf);
  free(c);
}

static void conn_recv(conn *c) {
  pier_buf b = pier_buf_init(c->buf, c->buf == c->probe ? sizeof c->probe : BENCH_BUF_SIZE);
  int rc = pier_recv(c->s, &c->op, &b, 1, 0, on_recv);
  if (rc) pier_close(c->s, on_closed);
}

static void on_echoed(pier_op *op, int status) {
  conn *c = op->data;
  if (status) pier_close(c->s, on_closed);
  else conn_recv(c);
}

static void on_recv(pier_op *op, int status) {
  conn *c = op->data;
  if (status || op->bytes == 0) { /* end of stream, or a reset */
    pier_close(c->s, on_closed);
    return;
  }
  pier_buf b = pier_buf_init(c->buf, op->bytes);
  int rc = pier_send(c->s, &c->op, &b, 1, 0, on_echoed);
  if (rc) pier_close(c->s, on_closed);
}

static void on_settled(pier_timer *t) {
  (void)t;
  bench_idle_measure();
}

static void on_accept(pier_op *op, int status) {
  check("accept", status);
  conn *c = calloc(1, sizeof *c);
  if (!c) bench_die("out of memory");
  c->s = op->accepted;
  c->op.data = c;
  c->buf = params->idle ? c->probe : malloc(BENCH_BUF_SIZE);
  if (!c->buf) bench_die("out of memory");
  pier_socket_set_data(c->s, c);
  if (!params->idle) check("nodelay", pier_setsockopt(c->s, PIER_SO_NODELAY, 1));
  conn_recv(c);
  if (++accepted < params->conns) {
    check("pier_accept", pier_accept(listener, &accept_op, NULL, NULL, on_accept));
    return;
  }
  pier_close(listener, NULL);
  /* Idle: measure once the loop has gone round, as for the others. */
  if (params->idle) {
    check("timer", pier_timer_init(loop, &timer));
    check("timer", pier_timer_start(&timer, 50, 0, on_settled));
  }
}

static int serve(const bench_params *p) {
  struct sockaddr_in sin = bench_loopback(0);
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  params = p;
  new_loop();
  check("open", pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &listener));
  check("bind", pier_bind(listener, (struct sockaddr *)&sin, sizeof sin));
  check("listen", pier_listen(listener, 0));
  check("getsockname", pier_getsockname(listener, &ss, &len));
  check("pier_accept", pier_accept(listener, &accept_op, NULL, NULL, on_accept));
  bench_server_ready(ntohs(((struct sockaddr_in *)&ss)->sin_port));
  pier_loop_run(loop, PIER_RUN_DEFAULT);
  return pier_loop_free(loop) != 0;
}

/* ------------------------------------------------------------------ */
/* client                                                              */
/* ------------------------------------------------------------------ */

static cconn *clients;
static void on_sent(pier_op *op, int status);

/* One send at a time, as long as the flow allows. */
static void client_send(cconn *k) {
  if (k->sending) return;
  size_t n = bench_flow_next(&k->flow);
  if (n == 0) return;
  pier_buf b = pier_buf_init((void *)bench_payload, n);
  check("pier_send", pier_send(k->s, &k->send_op, &b, 1, 0, on_sent));
  k->sending = 1;
}

static void on_sent(pier_op *op, int status) {
  cconn *k = op->data;
  k->sending = 0;
  if (bench_client_stopped()) return; /* our own close cancelled it */
  check("send", status);
  client_send(k);
}

static void on_client_recv(pier_op *op, int status) {
  cconn *k = op->data;
  if (bench_client_stopped()) return;
  check("recv", status);
  if (op->bytes == 0) bench_die("recv: end of stream");
  bench_flow_received(&k->flow, op->bytes);
  pier_buf b = pier_buf_init(k->buf, BENCH_BUF_SIZE);
  check("pier_recv", pier_recv(k->s, &k->recv_op, &b, 1, 0, on_client_recv));
  client_send(k);
}

static void on_connected(pier_op *op, int status) {
  cconn *k = op->data;
  check("connect", status);
  check("nodelay", pier_setsockopt(k->s, PIER_SO_NODELAY, 1));
  pier_buf b = pier_buf_init(k->buf, BENCH_BUF_SIZE);
  check("pier_recv", pier_recv(k->s, &k->recv_op, &b, 1, 0, on_client_recv));
  client_send(k);
}

static void on_stop(pier_timer *t) {
  (void)t;
  bench_client_stop();
  /* Every pending op completes with PIER_ECANCELED, then the sockets go. */
  for (int i = 0; i < params->conns; i++) pier_close(clients[i].s, NULL);
}

static int client(const bench_params *p, unsigned port) {
  struct sockaddr_in sin = bench_loopback(port);
  params = p;
  new_loop();
  clients = calloc((size_t)p->conns, sizeof *clients);
  if (!clients) bench_die("out of memory");
  for (int i = 0; i < p->conns; i++) {
    cconn *k = &clients[i];
    if (!(k->buf = malloc(BENCH_BUF_SIZE))) bench_die("out of memory");
    k->connect_op.data = k->send_op.data = k->recv_op.data = k;
    check("open", pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &k->s));
    check("pier_connect", pier_connect(k->s, &k->connect_op, (struct sockaddr *)&sin,
                                       sizeof sin, NULL, NULL, on_connected));
  }
  check("timer", pier_timer_init(loop, &timer));
  check("timer", pier_timer_start(&timer, bench_client_ms(), 0, on_stop));
  pier_loop_run(loop, PIER_RUN_DEFAULT);
  for (int i = 0; i < p->conns; i++) free(clients[i].buf);
  free(clients);
  return pier_loop_free(loop) != 0;
}

int main(int argc, char **argv) {
  static const bench_impl impl = {
    .name = "pier",
    .count_allocs = count_allocs,
    .serve = serve,
    .client = client,
    .app_conn_size = sizeof(conn),
  };
  return bench_main(argc, argv, &impl);
}
