/* SPDX-License-Identifier: MIT */
/*
 * examples/guide-server.c - the echo server that doc/guide.md walks
 * through, complete.  Its client is examples/guide-client.c.
 *
 * One loop, one thread, one listener on 127.0.0.1:
 *   - a condition function decides every connection request before it is
 *     accepted: callers from anywhere but loopback are REJECTed, and while
 *     MAX_OPEN connections are open the request is DEFERred and asked
 *     again 100 ms later from a timer;
 *   - every accepted connection gets a struct conn of its own, found from
 *     its socket with pier_socket_get_data() and freed in its close
 *     callback;
 *   - the connection receives into three buffers (scatter) and sends back
 *     what came (gather), until the client shuts down its side;
 *   - a repeating timer prints the counters every second, and is stopped
 *     when the server has nothing left to do, so that pier_loop_run()
 *     returns.
 *
 * Usage: guide-server [--port N] [--connections N] [--verbose] [--help]
 * It prints "listening on 127.0.0.1 port P" (flushed) once it listens, so
 * a script can start the client then:
 *   guide-server --connections 3 &      (prints the port P)
 *   guide-client --port P
 * tests/guide.sh runs the pair that way.
 *
 * doc/guide.md quotes this file: the lines between a "guide: NAME" comment
 * and the next "guide: end" are a block of the guide, and tests/guide.sh
 * checks that the guide's copy is the same, character for character.
 *
 * Build in the pier tree (make examples/guide-server) or against an
 * installed pier:  cc guide-server.c $(pkg-config --cflags --libs pier)
 */
#include <pier.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPEN 64          /* connections open at once; then DEFER */
#define RETRY_MS 100         /* how long a deferred request waits */
#define STATS_MS 1000        /* how often the counters are printed */

/* guide: server-state */
/* Everything the server keeps; one of these, on main()'s stack. */
struct server {
  pier_loop *loop;
  pier_socket *listener;        /* NULL once it is closed */
  pier_op accept_op;            /* the one accept kept pending */
  pier_timer retry;             /* after a DEFER: accept again later */
  pier_timer stats;             /* repeating: prints the counters */
  unsigned long max_conns;      /* stop after that many; 0: never */
  unsigned long accepted, open, rejected, deferred;
  unsigned long long bytes;     /* echoed, all connections together */
};
/* guide: end */

/* guide: conn-state */
/* One accepted connection.  Its socket points back at it
   (pier_socket_set_data), so every callback of the socket finds it. */
struct conn {
  struct server *server;
  pier_socket *sock;
  pier_op op;                   /* one operation at a time: a receive,
                                   then the send of its echo */
  char head[5], mid[7], tail[64];
};
/* guide: end */

static void start_accept(struct server *sv);
static void start_echo(struct server *sv, pier_socket *sock);
static void finish_if_done(struct server *sv);

/* ------------------------------------------------------------ listening */

/* guide: listen */
/* Open a TCP/IPv4 listener on 127.0.0.1:port (0: the OS picks the port)
   and print the port it got. */
static int open_listener(struct server *sv, unsigned port) {
  struct sockaddr_in addr;
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  int rc = pier_socket_open(sv->loop, pier_protocol_find("tcp4"), 0,
                            &sv->listener);
  if (rc != 0) return rc;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);   /* or INADDR_ANY */
  addr.sin_port = htons((unsigned short)port);
  rc = pier_bind(sv->listener, (const struct sockaddr *)&addr, sizeof addr);
  if (rc == 0) rc = pier_listen(sv->listener, 0);  /* 0: the OS maximum */
  if (rc == 0) rc = pier_getsockname(sv->listener, &ss, &len);
  if (rc != 0) {
    pier_close(sv->listener, NULL);
    sv->listener = NULL;
    return rc;
  }
  printf("listening on 127.0.0.1 port %u\n",
         (unsigned)ntohs(((const struct sockaddr_in *)&ss)->sin_port));
  fflush(stdout);
  return 0;
}
/* guide: end */

/* ------------------------------------------------------------ accepting */

/* guide: condition */
/* Decide a connection request before it is accepted. */
static int condition(pier_accept_info *info, void *ctx) {
  struct server *sv = ctx;
  const struct sockaddr_in *from = (const struct sockaddr_in *)info->caller;
  if (info->caller->sa_family != AF_INET ||
      from->sin_addr.s_addr != htonl(INADDR_LOOPBACK)) {
    sv->rejected++;
    return PIER_CF_REJECT;        /* refused; this accept keeps waiting */
  }
  if (sv->open >= MAX_OPEN) {
    sv->deferred++;
    return PIER_CF_DEFER;         /* ask me again: PIER_ETRYAGAIN below */
  }
  return PIER_CF_ACCEPT;
}
/* guide: end */

/* guide: accept */
static void on_accept(pier_op *op, int status);

static void start_accept(struct server *sv) {
  int rc = pier_accept(sv->listener, &sv->accept_op, condition, sv,
                       on_accept);
  if (rc != 0) fprintf(stderr, "pier_accept: %s\n", pier_strerror(rc));
}

static void on_retry(pier_timer *t) {
  start_accept(t->data);
}

static void on_listener_closed(pier_socket *s) {
  struct server *sv = pier_socket_get_data(s);
  sv->listener = NULL;
  finish_if_done(sv);
}

static void on_accept(pier_op *op, int status) {
  struct server *sv = op->data;
  if (status == PIER_ETRYAGAIN) {         /* deferred: ask again later */
    pier_timer_start(&sv->retry, RETRY_MS, 0, on_retry);
    return;
  }
  if (status == PIER_ECANCELED) return;   /* the listener is closing */
  if (status != 0) {                      /* e.g. out of descriptors */
    fprintf(stderr, "accept: %s\n", pier_strerror(status));
    pier_timer_start(&sv->retry, RETRY_MS, 0, on_retry);
    return;
  }
  sv->accepted++;
  start_echo(sv, op->accepted);           /* the new socket is ours */
  if (sv->max_conns && sv->accepted == sv->max_conns)
    pier_close(sv->listener, on_listener_closed);  /* enough: stop */
  else
    start_accept(sv);                     /* the op is idle again */
}
/* guide: end */

/* ------------------------------------------------------------ echoing */

/* guide: on-closed */
/* The close callback: the socket is gone after it, and so is its state. */
static void on_closed(pier_socket *s) {
  struct conn *c = pier_socket_get_data(s);
  struct server *sv = c->server;
  free(c);
  sv->open--;
  finish_if_done(sv);
}
/* guide: end */

/* guide: recv */
static void on_recv(pier_op *op, int status);

static void post_recv(struct conn *c) {
  pier_buf in[3];
  int rc;
  in[0] = pier_buf_init(c->head, sizeof c->head);
  in[1] = pier_buf_init(c->mid, sizeof c->mid);
  in[2] = pier_buf_init(c->tail, sizeof c->tail);
  rc = pier_recv(c->sock, &c->op, in, 3, 0, on_recv);  /* in is copied */
  if (rc != 0) pier_close(c->sock, on_closed);
}
/* guide: end */

/* guide: start-echo */
/* A new connection: its state, then its first receive. */
static void start_echo(struct server *sv, pier_socket *sock) {
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) {                     /* nobody to serve it: drop it */
    pier_close(sock, NULL);
    return;
  }
  c->server = sv;
  c->sock = sock;
  c->op.data = c;                      /* op->data is ours, pier's never */
  pier_socket_set_data(sock, c);       /* on_closed() finds it there */
  sv->open++;
  post_recv(c);
}
/* guide: end */

/* guide: echo */
static void on_sent(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status != 0) {
    pier_close(c->sock, on_closed);
    return;
  }
  c->server->bytes += op->bytes;
  post_recv(c);                        /* wait for more */
}

static void on_recv(pier_op *op, int status) {
  struct conn *c = op->data;
  char *base[3];
  size_t cap[3], left = op->bytes, n;
  pier_buf out[3];
  if (status != 0 || op->bytes == 0) { /* an error, or the end of stream */
    pier_close(c->sock, on_closed);
    return;
  }
  base[0] = c->head, cap[0] = sizeof c->head;
  base[1] = c->mid, cap[1] = sizeof c->mid;
  base[2] = c->tail, cap[2] = sizeof c->tail;
  for (n = 0; n < 3 && left > 0; n++) { /* the first op->bytes bytes */
    size_t take = left < cap[n] ? left : cap[n];
    out[n] = pier_buf_init(base[n], take);
    left -= take;
  }
  if (pier_send(c->sock, &c->op, out, n, 0, on_sent) != 0)  /* same op */
    pier_close(c->sock, on_closed);
}
/* guide: end */

/* ------------------------------------------------------------ ending */

/* guide: stats */
static void on_stats(pier_timer *t) {
  struct server *sv = t->data;
  printf("stats: %lu accepted, %lu open, %lu rejected, %lu deferred, "
         "%llu bytes echoed\n", sv->accepted, sv->open, sv->rejected,
         sv->deferred, sv->bytes);
  fflush(stdout);
}

/* Once the listener is closed and the last connection too, nothing but
   the repeating timer is left: stop it, or pier_loop_run() never returns. */
static void finish_if_done(struct server *sv) {
  if (sv->listener == NULL && sv->open == 0) {
    pier_timer_stop(&sv->stats);
    pier_timer_stop(&sv->retry);
  }
}
/* guide: end */

/* ------------------------------------------------------------ main */

static void usage(FILE *to) {
  fprintf(to,
    "usage: guide-server [--port N] [--connections N] [--verbose]\n"
    "  The echo server of doc/guide.md, on 127.0.0.1.\n"
    "  --port N         port to listen on, 0-65535 (default 0: the OS\n"
    "                   picks one; the port is printed)\n"
    "  --connections N  stop after serving N connections, 1-1000000\n"
    "                   (default: serve until killed)\n"
    "  --verbose        print pier's own diagnostics (a log hook)\n"
    "  --help           this text\n"
    "  PIER_BACKEND=name picks the provider (default: the first usable).\n");
}

/* A whole decimal number in [lo, hi], or -1 with a message naming opt. */
static long number(const char *opt, const char *text, long lo, long hi) {
  char *end;
  long v;
  if (text == NULL) {
    fprintf(stderr, "guide-server: %s needs a value\n", opt);
    return -1;
  }
  v = strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "guide-server: %s %s: not a number in %ld-%ld\n", opt,
            text, lo, hi);
    return -1;
  }
  return v;
}

/* guide: log */
static void log_to_stderr(int level, const char *msg, void *ctx) {
  (void)ctx;
  fprintf(stderr, "pier[%d]: %s\n", level, msg);
}
/* guide: end */

static int parse_args(int argc, char **argv, struct server *sv,
                      long *port) {
  int i;
  for (i = 1; i < argc; i++) {
    long v;
    if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(argv[i], "--verbose") == 0) {
      pier_set_log(log_to_stderr, NULL);
    } else if (strcmp(argv[i], "--port") == 0) {
      if ((*port = number("--port", argv[++i], 0, 65535)) < 0) return -1;
    } else if (strcmp(argv[i], "--connections") == 0) {
      if ((v = number("--connections", argv[++i], 1, 1000000)) < 0)
        return -1;
      sv->max_conns = (unsigned long)v;
    } else {
      fprintf(stderr, "guide-server: unknown argument %s\n", argv[i]);
      usage(stderr);
      return -1;
    }
  }
  return 0;
}

/* guide: main-loop */
int main(int argc, char **argv) {
  struct server sv;
  long port = 0;
  int rc;
  memset(&sv, 0, sizeof sv);
  if (parse_args(argc, argv, &sv, &port) != 0) return 2;

  rc = pier_loop_new(NULL, &sv.loop);  /* $PIER_BACKEND, else the best */
  if (rc != 0) {
    fprintf(stderr, "pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  printf("pier %s on provider %s\n", pier_version_string(),
         pier_loop_backend(sv.loop));
/* guide: end */

/* guide: main-run */
  pier_timer_init(sv.loop, &sv.retry);
  pier_timer_init(sv.loop, &sv.stats);
  sv.retry.data = sv.stats.data = &sv;
  sv.accept_op.data = &sv;

  rc = open_listener(&sv, (unsigned)port);
  if (rc == 0) {
    pier_socket_set_data(sv.listener, &sv);
    start_accept(&sv);
    pier_timer_start(&sv.stats, STATS_MS, STATS_MS, on_stats);
  } else {
    fprintf(stderr, "listen: %s (%s)\n", pier_strerror(rc),
            pier_err_name(rc));
  }

  pier_loop_run(sv.loop, PIER_RUN_DEFAULT);  /* until nothing is alive */
  printf("done: %lu connections, %llu bytes echoed\n", sv.accepted,
         sv.bytes);
  if (pier_loop_free(sv.loop) != 0) return 1;  /* PIER_EBUSY: a leak */
  return rc == 0 ? 0 : 1;
}
/* guide: end */
