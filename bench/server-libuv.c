/* SPDX-License-Identifier: MIT */
/*
 * bench/server-libuv.c - the echo server on libuv, as a careful libuv user
 * writes one: the alloc callback hands out one buffer shared by every
 * connection (the read callback consumes it before the next read), the
 * echo goes out with uv_try_write, and only what the socket did not take
 * is copied into a uv_write request, with reading stopped until it is
 * written.  An idle connection costs its uv_tcp_t and nothing else.  No
 * socket options beyond libuv's defaults (SO_REUSEADDR on the listener),
 * as examples/iocpserver.
 *
 *   server-libuv -p PORT [--accept-close]     (see common.h)
 */
#define _GNU_SOURCE
#include "common.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

typedef struct wreq {
  uv_write_t req;
  char data[]; /* the bytes uv_try_write left */
} wreq;

static uv_loop_t *loop;
static uv_tcp_t listener;
static int accept_close;
static char buf[BENCH_BUF_SIZE];

static void on_closed(uv_handle_t *h) { free(h); }

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)h;
  (void)suggested;
  *b = uv_buf_init(buf, sizeof buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void on_written(uv_write_t *req, int status) {
  uv_stream_t *s = req->handle;
  free(req);
  if (status < 0) {
    if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  uv_read_start(s, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  if (nread == 0) return; /* EAGAIN */
  if (nread < 0) {        /* UV_EOF or an error */
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  uv_buf_t out = uv_buf_init(b->base, (unsigned)nread);
  int w = uv_try_write(s, &out, 1);
  if (w == nread) return;
  if (w < 0 && w != UV_EAGAIN) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  size_t done = w > 0 ? (size_t)w : 0, left = (size_t)nread - done;
  wreq *r = malloc(sizeof *r + left);
  if (!r) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  memcpy(r->data, b->base + done, left);
  uv_buf_t rest = uv_buf_init(r->data, (unsigned)left);
  uv_read_stop(s);
  if (uv_write(&r->req, s, &rest, 1, on_written) != 0) {
    free(r);
    uv_close((uv_handle_t *)s, on_closed);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *c = malloc(sizeof *c);
  if (!c) bench_die("out of memory");
  uv_tcp_init(loop, c);
  if (uv_accept(server, (uv_stream_t *)c) != 0) {
    uv_close((uv_handle_t *)c, on_closed);
    return;
  }
  if (accept_close) uv_close((uv_handle_t *)c, on_closed);
  else uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

int main(int argc, char **argv) {
  unsigned port;
  bench_name = "server-libuv";
  bench_server_args(argc, argv, &port, &accept_close);
  bench_raise_fd_limit();
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  struct sockaddr_in sin = bench_loopback(port);
  int len = sizeof sin, rc;
  uv_tcp_init(loop, &listener);
  if ((rc = uv_tcp_bind(&listener, (struct sockaddr *)&sin, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&listener, SOMAXCONN, on_connection)) != 0 ||
      (rc = uv_tcp_getsockname(&listener, (struct sockaddr *)&sin, &len)) != 0)
    bench_die("listen: %s", uv_strerror(rc));
  bench_server_listening(ntohs(sin.sin_port));
  return uv_run(loop, UV_RUN_DEFAULT);
}
