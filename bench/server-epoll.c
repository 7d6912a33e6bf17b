/* SPDX-License-Identifier: MIT */
/*
 * bench/server-epoll.c - the baseline echo server on raw Linux epoll, as a
 * careful hand-written server is: level-triggered, one read() per wake-up
 * into one buffer shared by every connection, the echo written at once;
 * only bytes the socket does not take are copied aside, and then EPOLLOUT
 * replaces EPOLLIN until they are out.  An idle connection costs a small
 * struct and nothing else.  No socket options beyond SO_REUSEADDR on the
 * listener, as examples/iocpserver.
 *
 *   server-epoll -p PORT [--accept-close]     (see common.h)
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256

typedef struct conn {
  int fd;
  unsigned events;   /* what epoll watches now */
  char *pending;     /* echo bytes the socket did not take yet */
  size_t len, off;
} conn;

static int ep;
static char buf[BENCH_BUF_SIZE]; /* every read lands here */

static void watch(conn *c, unsigned events) {
  if (c->events == events) return;
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
    bench_die("epoll_ctl: %s", strerror(errno));
  c->events = events;
}

static void conn_close(conn *c) {
  close(c->fd); /* also leaves the epoll set */
  free(c->pending);
  free(c);
}

/* Write data; keep what the socket refuses.  -1 on error. */
static int echo(conn *c, const char *data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN) return -1;
      char *p = malloc(len - off);
      if (!p) return -1;
      memcpy(p, data + off, len - off);
      c->pending = p;
      c->len = len - off;
      c->off = 0;
      watch(c, EPOLLOUT); /* stop reading until the echo is out */
      return 0;
    }
    off += (size_t)w;
  }
  return 0;
}

static void on_event(conn *c, unsigned events) {
  if (c->pending) { /* a write was stuck: finish it first */
    while (c->off < c->len) {
      ssize_t w = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN) return;
        conn_close(c);
        return;
      }
      c->off += (size_t)w;
    }
    free(c->pending);
    c->pending = NULL;
    watch(c, EPOLLIN);
    return;
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  ssize_t n = read(c->fd, buf, sizeof buf);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0 || echo(c, buf, (size_t)n) != 0) conn_close(c);
}

int main(int argc, char **argv) {
  unsigned port;
  int accept_close;
  bench_name = "server-epoll";
  bench_server_args(argc, argv, &port, &accept_close);
  bench_raise_fd_limit();
  signal(SIGPIPE, SIG_IGN);

  ep = epoll_create1(EPOLL_CLOEXEC);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  struct sockaddr_in sin = bench_loopback(port);
  socklen_t len = sizeof sin;
  if (ep < 0 || lfd < 0 ||
      setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
      listen(lfd, SOMAXCONN) != 0 ||
      getsockname(lfd, (struct sockaddr *)&sin, &len) != 0)
    bench_die("listen: %s", strerror(errno));
  static conn listener; /* its address tells it apart */
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listener};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  bench_server_listening(ntohs(sin.sin_port));

  struct epoll_event evs[MAX_EVENTS];
  for (;;) {
    int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) bench_die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (c != &listener) { on_event(c, evs[i].events); continue; }
      int fd;
      while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        if (accept_close) { close(fd); continue; }
        conn *k = calloc(1, sizeof *k);
        if (!k) bench_die("out of memory");
        k->fd = fd;
        k->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = k};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
          bench_die("epoll_ctl: %s", strerror(errno));
      }
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        bench_die("accept: %s", strerror(errno));
    }
  }
}
