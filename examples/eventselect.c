/* SPDX-License-Identifier: MIT */
/*
 * examples/eventselect.c - the WSAEventSelect samples: an echo server (and,
 * in the selftest, its clients) driven by network events instead of
 * overlapped operations.
 *
 * What it shows
 *   - pier_event_select(s, mask, cb): pier records the events in mask as
 *     they happen on s and calls cb on the loop; pier_enum_network_events
 *     reads and clears the record, with one error code per event.
 *   - Non-blocking sockets with the blocking form of the calls (cb == NULL):
 *     they return PIER_EWOULDBLOCK instead of waiting.
 *   - Winsock's re-enabling rules, which make the code simple once known:
 *     READ is recorded again only after a receive, ACCEPT only after an
 *     accept, WRITE only after a send that returned PIER_EWOULDBLOCK - so
 *     each handler calls until PIER_EWOULDBLOCK and then waits for the next
 *     event.  CONNECT comes once with the connect's status (and WRITE with
 *     it when it succeeded); CLOSE comes once, after the data before it has
 *     been read, with 0 for an orderly close.
 *   - Events and operations mix: the clients start their connect as an
 *     overlapped operation, and its completion is what records CONNECT.
 *   - Network events do not keep a loop alive: pier_loop_ref does.
 *
 * How to run it
 *   eventselect [-p port]    serve on 127.0.0.1:port (default 5006) until
 *                            killed; try `nc 127.0.0.1 5006`
 *   eventselect --selftest   the server and NCLIENTS event-driven clients on
 *                            one loop; each sends a message, checks the echo,
 *                            shuts down and waits for the server's CLOSE
 *   eventselect --help       the options, their ranges and defaults
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest (ports and order vary):
 *   eventselect: pier 0.1.0 on provider libevent, listening on 127.0.0.1:38113
 *   client 1: CONNECT ok
 *   server: ACCEPT: connection from port 50022
 *   client 1: echo verified, shutting down
 *   server: CLOSE from port 50022 (orderly)
 *   client 1: CLOSE (orderly)
 *   ...
 *   eventselect: selftest ok (3 clients)
 * and exit status 0 (1 on any failure; 2 for a bad command line, with a
 * message naming the argument).
 *
 * Build in the tree (make examples/eventselect) or against an installed pier:
 *   cc eventselect.c $(pkg-config --cflags --libs pier) -o eventselect
 */
#include <pier.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NCLIENTS 3
#define DEFAULT_PORT 5006
#define DEADLINE_MS 20000

/* Per socket state, found with pier_socket_get_data. */
struct peer {
  int client;            /* 0: a server connection; else the client's id */
  unsigned port;         /* the remote port, for the messages */
  char buf[1024];
  size_t len, off;       /* server: bytes to echo, and sent; client: sent */
  char msg[64];          /* client: what it sends */
  size_t msglen, got;    /* client: its length, and echo bytes received */
  pier_op connect_op;    /* client: the connect */
  int closing;
};

static pier_loop *loop;
static pier_socket *listener;
static pier_timer deadline;
static int failures, clients_left, clients_ok;

static struct sockaddr_in loopback(unsigned port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((unsigned short)port);
  return sin;
}

static void on_closed(pier_socket *s) { free(pier_socket_get_data(s)); }

static void close_peer(pier_socket *s, struct peer *p) {
  if (p->closing) return;
  p->closing = 1;
  int rc = pier_close(s, on_closed); /* no event callback after this */
  if (rc != 0) {
    fprintf(stderr, "eventselect: pier_close: %s\n", pier_strerror(rc));
    failures++;
  }
}

static void fail(pier_socket *s, struct peer *p, const char *what, int rc) {
  fprintf(stderr, "eventselect: %s %d: %s: %s\n",
          p->client ? "client" : "connection from port",
          p->client ? p->client : (int)p->port, what, pier_strerror(rc));
  failures++;
  close_peer(s, p);
}

/* ------------------------------------------------------------------ */
/* the server                                                          */
/* ------------------------------------------------------------------ */

/*
 * Echo what there is to echo: send what is pending, then receive more,
 * until a call says PIER_EWOULDBLOCK - that re-enables the event (WRITE
 * or READ) which tells us when to go on.
 */
static void conn_pump(pier_socket *s, struct peer *p) {
  for (;;) {
    pier_op op = {0};
    int rc;
    if (p->off < p->len) {
      pier_buf b = pier_buf_init(p->buf + p->off, p->len - p->off);
      rc = pier_send(s, &op, &b, 1, 0, NULL);
      if (rc == PIER_EWOULDBLOCK) return; /* WRITE will say when */
      if (rc != 0) { fail(s, p, "pier_send", rc); return; }
      p->off += op.bytes;
      continue;
    }
    pier_buf b = pier_buf_init(p->buf, sizeof p->buf);
    rc = pier_recv(s, &op, &b, 1, 0, NULL);
    if (rc == PIER_EWOULDBLOCK) return; /* READ will say when */
    if (rc != 0) { fail(s, p, "pier_recv", rc); return; }
    if (op.bytes == 0) { /* the end of the stream: the client is done */
      printf("server: end of stream from port %u, closing\n", p->port);
      close_peer(s, p);
      return;
    }
    p->len = op.bytes;
    p->off = 0;
  }
}

static void on_conn_events(pier_socket *s, unsigned recorded) {
  (void)recorded;
  struct peer *p = pier_socket_get_data(s);
  pier_net_events ev;
  int rc = pier_enum_network_events(s, &ev);
  if (rc != 0) { fail(s, p, "pier_enum_network_events", rc); return; }
  if (ev.events & (PIER_EV_READ | PIER_EV_WRITE)) conn_pump(s, p);
  if (!p->closing && (ev.events & PIER_EV_CLOSE)) {
    int err = ev.errors[PIER_EV_CLOSE_BIT];
    printf("server: CLOSE from port %u (%s)\n", p->port,
           err ? pier_strerror(err) : "orderly");
    close_peer(s, p);
  }
}

/* ACCEPT: take every caller waiting, until PIER_EWOULDBLOCK. */
static void on_listener_events(pier_socket *s, unsigned recorded) {
  (void)recorded;
  pier_net_events ev;
  int rc = pier_enum_network_events(s, &ev);
  if (rc != 0 || !(ev.events & PIER_EV_ACCEPT)) {
    if (rc != 0) {
      fprintf(stderr, "eventselect: pier_enum_network_events: %s\n",
              pier_strerror(rc));
      failures++;
    }
    return;
  }
  if (ev.errors[PIER_EV_ACCEPT_BIT] != 0) {
    fprintf(stderr, "eventselect: ACCEPT: %s\n",
            pier_strerror(ev.errors[PIER_EV_ACCEPT_BIT]));
    failures++;
  }
  for (;;) {
    pier_op op = {0};
    rc = pier_accept(s, &op, NULL, NULL, NULL);
    if (rc == PIER_EWOULDBLOCK) return; /* ACCEPT is enabled again */
    if (rc != 0) {
      fprintf(stderr, "eventselect: pier_accept: %s\n", pier_strerror(rc));
      failures++;
      return;
    }
    /* The new socket has the listener's mode: non-blocking. */
    struct peer *p = calloc(1, sizeof *p);
    struct sockaddr_storage ss;
    size_t len = sizeof ss;
    if (p == NULL) {
      fprintf(stderr, "eventselect: out of memory\n");
      pier_close(op.accepted, NULL);
      continue;
    }
    if (pier_getpeername(op.accepted, &ss, &len) == 0)
      p->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    pier_socket_set_data(op.accepted, p);
    printf("server: ACCEPT: connection from port %u\n", p->port);
    rc = pier_event_select(op.accepted,
                           PIER_EV_READ | PIER_EV_WRITE | PIER_EV_CLOSE,
                           on_conn_events);
    if (rc != 0) fail(op.accepted, p, "pier_event_select", rc);
  }
}

/* ------------------------------------------------------------------ */
/* the selftest's clients                                              */
/* ------------------------------------------------------------------ */

static void client_finished(int ok) {
  clients_ok += ok;
  if (--clients_left > 0) return;
  /* All done: close the listener, stop the deadline and let the loop end. */
  int rc = pier_close(listener, NULL);
  if (rc != 0) {
    fprintf(stderr, "eventselect: pier_close: %s\n", pier_strerror(rc));
    failures++;
  }
  pier_timer_stop(&deadline);
  if ((rc = pier_loop_unref(loop)) != 0) {
    fprintf(stderr, "eventselect: pier_loop_unref: %s\n", pier_strerror(rc));
    failures++;
  }
}

static void client_fail(pier_socket *s, struct peer *p, const char *what,
                        int rc) {
  fail(s, p, what, rc);
  client_finished(0);
}

/* Send what is left of the message, then read the echo. */
static void client_pump(pier_socket *s, struct peer *p) {
  pier_op op = {0};
  int rc;
  while (p->off < p->msglen) {
    pier_buf b = pier_buf_init(p->msg + p->off, p->msglen - p->off);
    rc = pier_send(s, &op, &b, 1, 0, NULL);
    if (rc == PIER_EWOULDBLOCK) return;
    if (rc != 0) { client_fail(s, p, "pier_send", rc); return; }
    p->off += op.bytes;
  }
  while (p->got < p->msglen) {
    pier_buf b = pier_buf_init(p->buf + p->got, p->msglen - p->got);
    rc = pier_recv(s, &op, &b, 1, 0, NULL);
    if (rc == PIER_EWOULDBLOCK) return;
    if (rc != 0) { client_fail(s, p, "pier_recv", rc); return; }
    if (op.bytes == 0) { client_fail(s, p, "echo", PIER_ECONNRESET); return; }
    p->got += op.bytes;
  }
  if (memcmp(p->buf, p->msg, p->msglen) != 0) {
    client_fail(s, p, "echo", PIER_EPROTO);
    return;
  }
  printf("client %d: echo verified, shutting down\n", p->client);
  p->got++; /* past msglen: done, do not come here again */
  /* Half-close: the server reads the end of the stream and closes; we
     then get CLOSE. */
  if ((rc = pier_shutdown(s, PIER_SHUT_WR)) != 0)
    client_fail(s, p, "pier_shutdown", rc);
}

static void on_client_events(pier_socket *s, unsigned recorded) {
  (void)recorded;
  struct peer *p = pier_socket_get_data(s);
  pier_net_events ev;
  int rc = pier_enum_network_events(s, &ev);
  if (rc != 0) { client_fail(s, p, "pier_enum_network_events", rc); return; }
  if (ev.events & PIER_EV_CONNECT) {
    int err = ev.errors[PIER_EV_CONNECT_BIT];
    if (err != 0) { client_fail(s, p, "CONNECT", err); return; }
    printf("client %d: CONNECT ok\n", p->client);
  }
  if (ev.events & (PIER_EV_WRITE | PIER_EV_READ)) {
    if (p->got <= p->msglen) client_pump(s, p);
    if (p->closing) return;
  }
  if (ev.events & PIER_EV_CLOSE) {
    int err = ev.errors[PIER_EV_CLOSE_BIT];
    if (err != 0 || p->got <= p->msglen) {
      client_fail(s, p, "CLOSE before the echo", err ? err : PIER_ECONNRESET);
      return;
    }
    printf("client %d: CLOSE (orderly)\n", p->client);
    close_peer(s, p);
    client_finished(1);
  }
}

/* The connect's outcome is handled by the CONNECT event (which carries the
   same status); the completion itself has nothing left to do. */
static void on_connect_done(pier_op *op, int status) {
  (void)op;
  (void)status;
}

static int start_client(int id, unsigned port) {
  struct sockaddr_in to = loopback(port);
  pier_socket *s;
  struct peer *p = calloc(1, sizeof *p);
  if (p == NULL) return PIER_ENOMEM;
  p->client = id;
  p->port = port;
  p->msglen = (size_t)snprintf(p->msg, sizeof p->msg,
                               "client %d, driven by network events", id);
  int rc = pier_socket_open(loop, pier_protocol_find("tcp4"),
                            PIER_SOCK_NONBLOCK, &s);
  if (rc != 0) { free(p); return rc; }
  pier_socket_set_data(s, p);
  /* Select first, then connect: CONNECT (and WRITE) report the result. */
  rc = pier_event_select(s, PIER_EV_CONNECT | PIER_EV_READ | PIER_EV_WRITE |
                         PIER_EV_CLOSE, on_client_events);
  if (rc == 0)
    rc = pier_connect(s, &p->connect_op, (struct sockaddr *)&to, sizeof to,
                      NULL, NULL, on_connect_done);
  if (rc != 0) {
    close_peer(s, p);
    return rc;
  }
  clients_left++;
  return 0;
}

static void on_deadline(pier_timer *t) {
  (void)t;
  fprintf(stderr, "eventselect: selftest did not finish in %d ms\n",
          DEADLINE_MS);
  failures++;
  pier_loop_stop(loop);
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* A usage error: name the argument and what is wrong; exit status 2. */
static void usage_error(const char *arg, const char *why) {
  fprintf(stderr, "eventselect: %s: %s (eventselect --help lists the options)\n", arg,
          why);
  exit(2);
}

/* The value after option argv[*i]; a usage error when there is none. */
static const char *value(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) usage_error(argv[*i], "needs a value");
  return argv[++*i];
}

/* S, the value of option OPT, as a whole number from LO to HI: digits
   only (no sign, spaces or trailing text), else a usage error. */
static long number(const char *opt, const char *s, long lo, long hi) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s < '0' || *s > '9' || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "eventselect: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: eventselect [-p PORT]\n"
    "       eventselect --selftest | --help\n"
    "Echo server on 127.0.0.1 driven by network events (pier_event_select), "
    "until\n"
    "killed.\n"
    "  -p PORT     listen on PORT, 0 to 65535 (0: any free port); default "
    "%d\n"
    "  --selftest  the server and %d event-driven clients on one loop\n"
    "  -h, --help  this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here).\n",
    DEFAULT_PORT, NCLIENTS);
}

int main(int argc, char **argv) {
  unsigned port = DEFAULT_PORT;
  int selftest = 0, rc;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(a, "--selftest") == 0) selftest = 1;
    else if (strcmp(a, "-p") == 0)
      port = (unsigned)number(a, value(argc, argv, &i), 0, 65535);
    else usage_error(a, "unknown option");
  }
  if (selftest) port = 0;
  setvbuf(stdout, NULL, _IOLBF, 0);

  if ((rc = pier_loop_new(NULL, &loop)) != 0) {
    fprintf(stderr, "eventselect: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  struct sockaddr_in addr = loopback(port);
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  rc = pier_socket_open(loop, pier_protocol_find("tcp4"), PIER_SOCK_NONBLOCK,
                        &listener);
  if (rc == 0 && !selftest) rc = pier_setsockopt(listener, PIER_SO_REUSEADDR, 1);
  if (rc == 0) rc = pier_bind(listener, (struct sockaddr *)&addr, sizeof addr);
  if (rc == 0) rc = pier_listen(listener, 0);
  if (rc == 0) rc = pier_getsockname(listener, &ss, &len);
  if (rc == 0) rc = pier_event_select(listener, PIER_EV_ACCEPT, on_listener_events);
  if (rc != 0) {
    fprintf(stderr, "eventselect: listener: %s\n", pier_strerror(rc));
    return 1;
  }
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  printf("eventselect: pier %s on provider %s, listening on 127.0.0.1:%u\n",
         pier_version_string(), pier_loop_backend(loop), port);

  /* Selected events do not keep the loop alive; this reference does
     (dropped by the selftest when its clients are done). */
  if ((rc = pier_loop_ref(loop)) != 0) {
    fprintf(stderr, "eventselect: pier_loop_ref: %s\n", pier_strerror(rc));
    return 1;
  }
  if (selftest) {
    if ((rc = pier_timer_init(loop, &deadline)) == 0)
      rc = pier_timer_start(&deadline, DEADLINE_MS, 0, on_deadline);
    for (int i = 1; rc == 0 && i <= NCLIENTS; i++) rc = start_client(i, port);
    if (rc != 0) {
      fprintf(stderr, "eventselect: selftest setup: %s\n", pier_strerror(rc));
      return 1;
    }
  }

  rc = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (rc < 0) {
    fprintf(stderr, "eventselect: pier_loop_run: %s\n", pier_strerror(rc));
    failures++;
  }
  if ((rc = pier_loop_free(loop)) != 0) {
    fprintf(stderr, "eventselect: pier_loop_free: %s\n", pier_strerror(rc));
    failures++;
  }
  int ok = failures == 0 && (!selftest || clients_ok == NCLIENTS);
  if (selftest)
    printf("eventselect: selftest %s (%d clients)\n", ok ? "ok" : "FAILED",
           clients_ok);
  return ok ? 0 : 1;
}
