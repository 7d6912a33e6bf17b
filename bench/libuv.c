/*
 * bench/libuv.c - the echo server and client on libuv, the way its users
 * write them today: uv_try_write first, and uv_write (reading stopped
 * meanwhile) only for what the socket did not take at once.  Reading
 * uses one buffer per connection, handed out by the alloc callback.
 */
#define _GNU_SOURCE
#include "common.h"

#include <stdlib.h>

#include <uv.h>

typedef struct conn {
  uv_tcp_t tcp;           /* first: the handle is the connection */
  uv_write_t *wr;         /* echo only: an idle connection never writes */
  char *buf;              /* echo: BENCH_BUF_SIZE bytes; idle: probe */
  char probe[16];         /* idle: the only read is the end of stream */
} conn;

typedef struct cconn {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t wr;
  int writing;            /* a uv_write is in flight */
  char *buf;
  bench_flow flow;
} cconn;

static uv_loop_t *loop;
static const bench_params *params;
static uv_tcp_t listener;
static uv_timer_t timer;
static int accepted;

static void die_uv(const char *what, int err) {
  bench_die("%s: %s", what, uv_strerror(err));
}

static void count_allocs(void) {
  /* Before the loop exists: every libuv allocation from now on counts. */
  uv_replace_allocator(bench_lib_malloc, bench_lib_realloc, bench_lib_calloc,
                       bench_lib_free);
  bench_lib_how = "uv_replace_allocator";
}

/* ------------------------------------------------------------------ */
/* server                                                              */
/* ------------------------------------------------------------------ */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_closed(uv_handle_t *h) {
  conn *c = (conn *)h;
  if (c->buf != c->probe) free(c->buf);
  free(c->wr);
  free(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = (conn *)h;
  (void)suggested;
  *buf = uv_buf_init(c->buf, c->buf == c->probe ? sizeof c->probe : BENCH_BUF_SIZE);
}

static void on_echoed(uv_write_t *wr, int status) {
  uv_stream_t *s = wr->handle;
  if (status < 0) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  uv_read_start(s, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = (conn *)s;
  if (nread == 0) return; /* EAGAIN */
  if (nread < 0) {        /* UV_EOF or an error */
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
  int w = uv_try_write(s, &out, 1);
  if (w == nread) return;
  if (w < 0 && w != UV_EAGAIN) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  if (w > 0) {
    out.base += w;
    out.len -= (size_t)w;
  }
  /* The rest goes out in the background; the buffer is busy until then. */
  uv_read_stop(s);
  uv_write(c->wr, s, &out, 1, on_echoed);
}

static void on_settled(uv_timer_t *t) {
  bench_idle_measure();
  uv_close((uv_handle_t *)t, NULL);
}

static void on_connection(uv_stream_t *l, int status) {
  if (status < 0) die_uv("listen", status);
  conn *c = calloc(1, sizeof *c);
  if (!c) bench_die("out of memory");
  if (params->idle) {
    c->buf = c->probe;
  } else if (!(c->buf = malloc(BENCH_BUF_SIZE)) || !(c->wr = malloc(sizeof *c->wr))) {
    bench_die("out of memory");
  }
  uv_tcp_init(loop, &c->tcp);
  int rc = uv_accept(l, (uv_stream_t *)&c->tcp);
  if (rc < 0) die_uv("accept", rc);
  if (!params->idle) uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (++accepted == params->conns) {
    uv_close((uv_handle_t *)l, NULL);
    /* Idle: measure once the loop has gone round, as for the others. */
    if (params->idle) {
      uv_timer_init(loop, &timer);
      uv_timer_start(&timer, on_settled, 50, 0);
    }
  }
}

static int serve(const bench_params *p) {
  params = p;
  loop = uv_default_loop();
  struct sockaddr_in sin = bench_loopback(0);
  int len = sizeof sin, rc;
  uv_tcp_init(loop, &listener);
  if ((rc = uv_tcp_bind(&listener, (struct sockaddr *)&sin, 0)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&listener, SOMAXCONN, on_connection)) < 0 ||
      (rc = uv_tcp_getsockname(&listener, (struct sockaddr *)&sin, &len)) < 0)
    die_uv("listen", rc);
  bench_server_ready(ntohs(sin.sin_port));
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) != 0;
}

/* ------------------------------------------------------------------ */
/* client                                                              */
/* ------------------------------------------------------------------ */

static void client_send(cconn *k);

static void on_sent(uv_write_t *wr, int status) {
  cconn *k = wr->data;
  k->writing = 0;
  if (status == UV_ECANCELED && bench_client_stopped()) return;
  if (status < 0) die_uv("send", status);
  client_send(k);
}

/* Send while the flow allows; what the socket does not take at once goes
   out through uv_write, and the flow waits for it. */
static void client_send(cconn *k) {
  uv_stream_t *s = (uv_stream_t *)&k->tcp;
  while (!k->writing) {
    size_t n = bench_flow_next(&k->flow);
    if (n == 0) return;
    uv_buf_t b = uv_buf_init((char *)bench_payload, (unsigned)n);
    int w = uv_try_write(s, &b, 1);
    if (w == (int)n) continue;
    if (w < 0 && w != UV_EAGAIN) die_uv("send", w);
    if (w > 0) {
      b.base += w;
      b.len -= (size_t)w;
    }
    k->writing = 1;
    k->wr.data = k;
    uv_write(&k->wr, s, &b, 1, on_sent);
  }
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  *buf = uv_buf_init(((cconn *)h)->buf, BENCH_BUF_SIZE);
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  cconn *k = (cconn *)s;
  (void)buf;
  if (nread < 0) die_uv("recv", (int)nread);
  if (nread == 0) return;
  bench_flow_received(&k->flow, (size_t)nread);
  client_send(k);
}

static void on_connected(uv_connect_t *req, int status) {
  cconn *k = req->data;
  if (status < 0) die_uv("connect", status);
  uv_tcp_nodelay(&k->tcp, 1);
  uv_read_start((uv_stream_t *)&k->tcp, on_client_alloc, on_client_read);
  client_send(k);
}

static cconn *clients;

static void on_stop(uv_timer_t *t) {
  bench_client_stop();
  uv_close((uv_handle_t *)t, NULL);
  for (int i = 0; i < params->conns; i++) uv_close((uv_handle_t *)&clients[i].tcp, NULL);
}

static int client(const bench_params *p, unsigned port) {
  params = p;
  loop = uv_default_loop();
  clients = calloc((size_t)p->conns, sizeof *clients);
  struct sockaddr_in sin = bench_loopback(port);
  if (!clients) bench_die("out of memory");
  for (int i = 0; i < p->conns; i++) {
    cconn *k = &clients[i];
    if (!(k->buf = malloc(BENCH_BUF_SIZE))) bench_die("out of memory");
    uv_tcp_init(loop, &k->tcp);
    k->connect.data = k;
    int rc = uv_tcp_connect(&k->connect, &k->tcp, (struct sockaddr *)&sin, on_connected);
    if (rc < 0) die_uv("connect", rc);
  }
  uv_timer_init(loop, &timer);
  uv_timer_start(&timer, on_stop, bench_client_ms(), 0);
  uv_run(loop, UV_RUN_DEFAULT);
  for (int i = 0; i < p->conns; i++) free(clients[i].buf);
  free(clients);
  return uv_loop_close(loop) != 0;
}

int main(int argc, char **argv) {
  static const bench_impl impl = {
    .name = "libuv",
    .count_allocs = count_allocs,
    .serve = serve,
    .client = client,
    .app_conn_size = sizeof(conn),
  };
  return bench_main(argc, argv, &impl);
}
