/*
 * bench/libevent.c - the echo server and client on libevent's plain event
 * API (event_new / event_add on an event_base; no bufferevents, whose
 * evbuffer copies would measure a different design).
 *
 * The server keeps one event per connection and switches it between
 * EV_READ and EV_WRITE (a write that is stuck stops the reading), as the
 * epoll baseline switches its one registration; the client keeps a read
 * event always and adds its write event only while a send is stuck.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

typedef struct conn {
  int fd;
  struct event *ev;     /* EV_READ, or EV_WRITE while the echo is stuck */
  char *buf;            /* echo: BENCH_BUF_SIZE bytes; idle: probe */
  size_t len, off;      /* echo bytes still to write */
  char probe[16];       /* idle: the only read is the end of stream */
} conn;

typedef struct cconn {
  int fd;
  struct event *rev, *wev;
  char *buf;
  const char *out;      /* message bytes still to send */
  size_t out_left;
  bench_flow flow;
} cconn;

static struct event_base *base;
static const bench_params *params;
static int accepted, open_conns;

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void count_allocs(void) {
  /* Before anything is allocated: every later libevent allocation counts. */
  event_set_mem_functions(bench_lib_malloc, bench_lib_realloc, bench_lib_free);
  bench_lib_how = "event_set_mem_functions";
}

/* ------------------------------------------------------------------ */
/* server                                                              */
/* ------------------------------------------------------------------ */

static void on_conn(evutil_socket_t fd, short what, void *arg);

static void conn_close(conn *c) {
  event_free(c->ev);
  close(c->fd);
  if (c->buf != c->probe) free(c->buf);
  free(c);
  if (--open_conns == 0 && accepted == params->conns) event_base_loopbreak(base);
}

/* Point the connection's one event at EV_READ or EV_WRITE. */
static void wait_for(conn *c, short what) {
  event_del(c->ev);
  event_assign(c->ev, base, c->fd, what | EV_PERSIST, on_conn, c);
  event_add(c->ev, NULL);
}

/* Write what is left of the echo: 1 all out, 0 stuck, -1 error. */
static int flush(conn *c) {
  while (c->off < c->len) {
    ssize_t w = write(c->fd, c->buf + c->off, c->len - c->off);
    if (w < 0) return errno == EAGAIN ? 0 : -1;
    c->off += (size_t)w;
  }
  return 1;
}

static void on_conn(evutil_socket_t fd, short what, void *arg) {
  conn *c = arg;
  int r;
  if (what & EV_WRITE) { /* the stuck echo can go on */
    if ((r = flush(c)) < 0) { conn_close(c); return; }
    if (r == 1) wait_for(c, EV_READ);
    return;
  }
  ssize_t n = read(fd, c->buf, c->buf == c->probe ? sizeof c->probe : BENCH_BUF_SIZE);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) { conn_close(c); return; }
  c->len = (size_t)n;
  c->off = 0;
  if ((r = flush(c)) < 0) { conn_close(c); return; }
  if (r == 0) wait_for(c, EV_WRITE);
}

static void on_settled(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what, (void)arg;
  bench_idle_measure();
}

static void on_accept(evutil_socket_t lfd, short what, void *arg) {
  (void)what;
  struct event *lev = arg;
  int fd;
  while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
    conn *c = calloc(1, sizeof *c);
    if (!c) bench_die("out of memory");
    c->fd = fd;
    c->buf = params->idle ? c->probe : malloc(BENCH_BUF_SIZE);
    c->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_conn, c);
    if (!c->buf || !c->ev) bench_die("out of memory");
    if (!params->idle) nodelay(fd);
    event_add(c->ev, NULL);
    open_conns++;
    if (++accepted == params->conns) {
      event_del(lev);
      /* Idle: measure once the loop has gone round, as for the others. */
      struct timeval tv = {0, 50000};
      if (params->idle) event_base_once(base, -1, EV_TIMEOUT, on_settled, NULL, &tv);
      return;
    }
  }
}

static int serve(const bench_params *p) {
  params = p;
  base = event_base_new();
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = bench_loopback(0);
  socklen_t len = sizeof sin;
  if (!base || lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
      listen(lfd, SOMAXCONN) != 0 ||
      getsockname(lfd, (struct sockaddr *)&sin, &len) != 0)
    bench_die("listen: %s", strerror(errno));
  struct event *lev = event_new(base, lfd, EV_READ | EV_PERSIST, on_accept,
                                event_self_cbarg());
  event_add(lev, NULL);
  bench_server_ready(ntohs(sin.sin_port));
  event_base_dispatch(base);
  event_free(lev);
  close(lfd);
  event_base_free(base);
  return open_conns != 0;
}

/* ------------------------------------------------------------------ */
/* client                                                              */
/* ------------------------------------------------------------------ */

/* Send while the flow allows and the socket takes it. */
static void client_send(cconn *k) {
  for (;;) {
    if (k->out_left == 0) {
      size_t n = bench_flow_next(&k->flow);
      if (n == 0) break;
      k->out = bench_payload;
      k->out_left = n;
    }
    ssize_t w = send(k->fd, k->out, k->out_left, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN) bench_die("send: %s", strerror(errno));
      break;
    }
    k->out += w;
    k->out_left -= (size_t)w;
  }
  if (k->out_left && !event_pending(k->wev, EV_WRITE, NULL)) event_add(k->wev, NULL);
  else if (!k->out_left && event_pending(k->wev, EV_WRITE, NULL)) event_del(k->wev);
}

static void on_client_read(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  cconn *k = arg;
  ssize_t n = read(fd, k->buf, BENCH_BUF_SIZE);
  if (n == 0 || (n < 0 && errno != EAGAIN))
    bench_die("recv: %s", n ? strerror(errno) : "end of stream");
  if (n > 0) {
    bench_flow_received(&k->flow, (size_t)n);
    client_send(k);
  }
}

static void on_client_write(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  client_send(arg);
}

/* The connect finished: start the flow and the reading. */
static void on_connected(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  cconn *k = arg;
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) bench_die("connect: %s", strerror(err));
  event_assign(k->wev, base, fd, EV_WRITE | EV_PERSIST, on_client_write, k);
  event_add(k->rev, NULL);
  client_send(k);
}

static void on_stop(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what, (void)arg;
  bench_client_stop();
  event_base_loopbreak(base);
}

static int client(const bench_params *p, unsigned port) {
  params = p;
  base = event_base_new();
  cconn *all = calloc((size_t)p->conns, sizeof *all);
  struct sockaddr_in sin = bench_loopback(port);
  if (!base || !all) bench_die("out of memory");
  for (int i = 0; i < p->conns; i++) {
    cconn *k = &all[i];
    k->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    k->buf = malloc(BENCH_BUF_SIZE);
    if (k->fd < 0 || !k->buf) bench_die("socket: %s", strerror(errno));
    nodelay(k->fd);
    if (connect(k->fd, (struct sockaddr *)&sin, sizeof sin) != 0 && errno != EINPROGRESS)
      bench_die("connect: %s", strerror(errno));
    k->rev = event_new(base, k->fd, EV_READ | EV_PERSIST, on_client_read, k);
    /* First used once, for the end of the connect; then for stuck sends. */
    k->wev = event_new(base, k->fd, EV_WRITE, on_connected, k);
    event_add(k->wev, NULL);
  }
  uint64_t ms = bench_client_ms();
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  event_base_once(base, -1, EV_TIMEOUT, on_stop, NULL, &tv);
  event_base_dispatch(base);
  for (int i = 0; i < p->conns; i++) {
    event_free(all[i].rev);
    event_free(all[i].wev);
    close(all[i].fd);
    free(all[i].buf);
  }
  free(all);
  event_base_free(base);
  return 0;
}

int main(int argc, char **argv) {
  static const bench_impl impl = {
    .name = "libevent",
    .count_allocs = count_allocs,
    .serve = serve,
    .client = client,
    .app_conn_size = sizeof(conn),
  };
  return bench_main(argc, argv, &impl);
}
