/* SPDX-License-Identifier: MIT */
/*
 * bench/server-bufferevent.c - the echo server on libevent's bufferevents,
 * as libevent's own documentation writes one: an evconnlistener accepts,
 * each connection is a socket bufferevent whose read callback moves the
 * input buffer into the output buffer (evbuffer_add_buffer: no copy of
 * the data), and libevent writes it out, up to 64 KiB per read and write
 * (bufferevent_set_max_single_read/write).  No socket options beyond
 * SO_REUSEADDR on the listener, as examples/iocpserver.
 *
 *   server-bufferevent -p PORT [--accept-close]     (see common.h)
 */
#define _GNU_SOURCE
#include "common.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

static struct event_base *base;
static int accept_close;

static void on_read(struct bufferevent *bev, void *ctx) {
  (void)ctx;
  evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *ctx) {
  (void)ctx;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int socklen, void *ctx) {
  (void)l;
  (void)sa;
  (void)socklen;
  (void)ctx;
  if (accept_close) {
    evutil_closesocket(fd);
    return;
  }
  struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) {
    evutil_closesocket(fd);
    return;
  }
  /* Whole 64 KiB messages per read and write, not libevent's default
     16 KiB: what a user tuning for bulk transfer sets. */
  bufferevent_set_max_single_read(bev, BENCH_BUF_SIZE);
  bufferevent_set_max_single_write(bev, BENCH_BUF_SIZE);
  bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv) {
  unsigned port;
  bench_name = "server-bufferevent";
  bench_server_args(argc, argv, &port, &accept_close);
  bench_raise_fd_limit();
  signal(SIGPIPE, SIG_IGN);
  base = event_base_new();
  if (!base) bench_die("event_base_new failed");
  struct sockaddr_in sin = bench_loopback(port);
  struct evconnlistener *l = evconnlistener_new_bind(
      base, on_accept, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, -1,
      (struct sockaddr *)&sin, sizeof sin);
  socklen_t len = sizeof sin;
  if (!l || getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &len) != 0)
    bench_die("listen failed");
  bench_server_listening(ntohs(sin.sin_port));
  return event_base_dispatch(base);
}
