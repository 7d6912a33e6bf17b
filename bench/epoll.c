/*
 * bench/epoll.c - the baseline: the echo server and client on raw Linux
 * epoll, with nothing between the program and the kernel.  Every ratio in
 * the report is against this.
 *
 * Level-triggered, as a lean hand-written server is: EPOLLIN stays on,
 * one read() per wake-up (a read that filled the buffer wakes us again),
 * and EPOLLOUT is switched on only while a write is stuck - so an echo
 * costs read + write and nothing more, no read that ends in EAGAIN.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define MAX_EVENTS 256

/* A connection; the client's carries more after the server's part.  The
   memory figure "app" is the server's part: what an idle connection
   needs the program to keep. */
typedef struct conn {
  int fd;
  unsigned events;        /* what epoll watches now */
  char *buf;              /* echo: BENCH_BUF_SIZE bytes; idle: probe */
  size_t len, off;        /* server: echo bytes still to write */
  char probe[16];         /* idle: the only read is the end of stream */
} conn;

typedef struct cconn {
  conn c;                 /* first: epoll hands back a conn * */
  const char *out;        /* message bytes still to send */
  size_t out_left;
  int connected;
  bench_flow flow;
} cconn;

static int ep;
static int timer_fd = -1;
static int open_conns;

/* Watch fd for events, if that changes anything. */
static void watch(conn *c, unsigned events) {
  if (c->events == events) return;
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
    bench_die("epoll_ctl: %s", strerror(errno));
  c->events = events;
}

static void conn_close(conn *c) {
  close(c->fd); /* also leaves the epoll set */
  if (c->buf != c->probe) free(c->buf);
  free(c); /* a cconn starts with its conn */
  open_conns--;
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* A timer on the epoll set (data.ptr NULL marks it). */
static void arm_timer(uint64_t ms) {
  struct itimerspec its = {{0, 0}, {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000}};
  timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (timer_fd < 0 || timerfd_settime(timer_fd, 0, &its, NULL) != 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, timer_fd, &ev) != 0)
    bench_die("timerfd: %s", strerror(errno));
}

static void disarm_timer(void) {
  if (timer_fd >= 0) close(timer_fd);
  timer_fd = -1;
}

/* ------------------------------------------------------------------ */
/* server                                                              */
/* ------------------------------------------------------------------ */

/* Write what is left of the echo; 1 when all of it is out. */
static int server_flush(conn *c) {
  while (c->off < c->len) {
    ssize_t w = write(c->fd, c->buf + c->off, c->len - c->off);
    if (w < 0) return errno == EAGAIN ? 0 : -1;
    c->off += (size_t)w;
  }
  return 1;
}

static void server_event(conn *c, unsigned events) {
  int r;
  if (c->off < c->len) { /* a write was stuck: finish it first */
    if ((r = server_flush(c)) < 0) { conn_close(c); return; }
    if (r == 0) return;
    watch(c, EPOLLIN);
    return;
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  ssize_t n = read(c->fd, c->buf, c->buf == c->probe ? sizeof c->probe : BENCH_BUF_SIZE);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) { conn_close(c); return; }
  c->len = (size_t)n;
  c->off = 0;
  if ((r = server_flush(c)) < 0) { conn_close(c); return; }
  if (r == 0) watch(c, EPOLLOUT); /* stop reading until the echo is out */
}

static int serve(const bench_params *p) {
  int accepted = 0;
  ep = epoll_create1(EPOLL_CLOEXEC);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = bench_loopback(0);
  socklen_t len = sizeof sin;
  if (ep < 0 || lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
      listen(lfd, SOMAXCONN) != 0 ||
      getsockname(lfd, (struct sockaddr *)&sin, &len) != 0)
    bench_die("listen: %s", strerror(errno));
  static conn listener; /* its address tells it apart */
  listener.fd = lfd;
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listener};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  bench_server_ready(ntohs(sin.sin_port));

  struct epoll_event evs[MAX_EVENTS];
  while (accepted < p->conns || open_conns > 0) {
    int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) bench_die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (c == NULL) { /* idle: settled after the last accept */
        disarm_timer();
        bench_idle_measure();
      } else if (c == &listener) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          conn *k = calloc(1, sizeof *k);
          if (!k) bench_die("out of memory");
          k->fd = fd;
          k->buf = p->idle ? k->probe : malloc(BENCH_BUF_SIZE);
          if (!k->buf) bench_die("out of memory");
          if (!p->idle) nodelay(fd);
          k->events = EPOLLIN;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = k};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
          open_conns++;
          /* Idle: measure once a loop iteration has passed after the last
             accept, as for the other libraries (whose work may be lazy). */
          if (++accepted == p->conns && p->idle) arm_timer(50);
        }
      } else {
        server_event(c, evs[i].events);
      }
    }
  }
  close(lfd);
  close(ep);
  return 0;
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
    ssize_t w = send(k->c.fd, k->out, k->out_left, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN) bench_die("send: %s", strerror(errno));
      break;
    }
    k->out += w;
    k->out_left -= (size_t)w;
  }
  watch(&k->c, k->out_left ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void client_event(cconn *k, unsigned events) {
  if (!k->connected) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(k->c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) bench_die("connect: %s", strerror(err));
    k->connected = 1;
    client_send(k);
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    ssize_t n = read(k->c.fd, k->c.buf, BENCH_BUF_SIZE);
    if (n == 0 || (n < 0 && errno != EAGAIN))
      bench_die("recv: %s", n ? strerror(errno) : "end of stream");
    if (n > 0) bench_flow_received(&k->flow, (size_t)n);
  }
  client_send(k);
}

static int client(const bench_params *p, unsigned port) {
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) bench_die("epoll_create1: %s", strerror(errno));
  cconn **all = calloc((size_t)p->conns, sizeof *all);
  struct sockaddr_in sin = bench_loopback(port);
  if (!all) bench_die("out of memory");
  for (int i = 0; i < p->conns; i++) {
    cconn *k = all[i] = calloc(1, sizeof *k);
    if (!k || !(k->c.buf = malloc(BENCH_BUF_SIZE))) bench_die("out of memory");
    k->c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    nodelay(k->c.fd);
    if (connect(k->c.fd, (struct sockaddr *)&sin, sizeof sin) != 0 &&
        errno != EINPROGRESS)
      bench_die("connect: %s", strerror(errno));
    k->c.events = EPOLLOUT; /* writable: the connect is done */
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = k};
    epoll_ctl(ep, EPOLL_CTL_ADD, k->c.fd, &ev);
    open_conns++;
  }
  arm_timer(bench_client_ms());

  struct epoll_event evs[MAX_EVENTS];
  while (!bench_client_stopped()) {
    int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) bench_die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n && !bench_client_stopped(); i++) {
      if (evs[i].data.ptr == NULL) bench_client_stop();
      else client_event(evs[i].data.ptr, evs[i].events);
    }
  }
  disarm_timer();
  for (int i = 0; i < p->conns; i++) conn_close(&all[i]->c);
  free(all);
  close(ep);
  return 0;
}

int main(int argc, char **argv) {
  static const bench_impl impl = {
    .name = "epoll",
    .count_allocs = NULL, /* nothing between us and the kernel */
    .serve = serve,
    .client = client,
    .app_conn_size = sizeof(conn),
  };
  return bench_main(argc, argv, &impl);
}
