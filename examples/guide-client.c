/* SPDX-License-Identifier: MIT */
/*
 * examples/guide-client.c - the client that doc/guide.md walks through,
 * complete.  It talks to examples/guide-server.c three times, each time in
 * another style, and checks every byte the server echoes:
 *
 *   1. overlapped: the server's name is resolved with pier_resolve, then
 *      pier_connect, a gather send of three buffers and a receive with
 *      PIER_MSG_WAITALL run as operations with callbacks on the loop; a
 *      timer bounds the whole exchange;
 *   2. blocking: the same with no callbacks - each call returns when it
 *      is done, as in a thread-per-client program;
 *   3. network events: a non-blocking socket watched with
 *      pier_event_select (READ, CLOSE), whose callback receives what is
 *      ready; pier_loop_ref keeps the loop running meanwhile, because
 *      selected events do not.
 *
 * Usage: guide-client --port N [--host NAME] [--help]
 * Exits 0 when all three echoes came back whole, 1 otherwise.  Run it
 * against guide-server --connections 3 (tests/guide.sh does).
 *
 * doc/guide.md quotes this file: the lines between a "guide: NAME" comment
 * and the next "guide: end" are a block of the guide, and tests/guide.sh
 * checks that the guide's copy is the same, character for character.
 *
 * Build in the pier tree (make examples/guide-client) or against an
 * installed pier:  cc guide-client.c $(pkg-config --cflags --libs pier)
 */
#include <pier.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEADLINE_MS 10000    /* each exchange must finish within this */

/* guide: client-state */
/* The client's state; one of these, on main()'s stack. */
struct client {
  pier_loop *loop;
  pier_socket *sock;
  pier_op op;                       /* one operation at a time */
  pier_op resolve_op;               /* the name lookup */
  pier_timer deadline;              /* bounds the overlapped exchange */
  struct sockaddr_storage server;   /* where guide-server listens */
  size_t server_len;
  const char *msg[3];               /* sent as a gather of 3 buffers */
  char echo[64];                    /* what comes back */
  size_t len, got;                  /* message length, echo bytes so far */
  int ok;                           /* 1 once an echo matched */
};
/* guide: end */

/* The message, whole, for comparing with the echo. */
static int echo_matches(const struct client *c) {
  size_t off = 0;
  int i;
  if (c->got != c->len) return 0;
  for (i = 0; i < 3; i++) {
    size_t n = strlen(c->msg[i]);
    if (memcmp(c->echo + off, c->msg[i], n) != 0) return 0;
    off += n;
  }
  return 1;
}

/* ------------------------------------------------------------ overlapped */

/* guide: client-closed */
static void on_client_closed(pier_socket *s) {
  struct client *c = pier_socket_get_data(s);
  pier_timer_stop(&c->deadline);    /* done in time: nothing else left */
}

/* Too late: cancel what is pending; its callback closes the socket. */
static void on_deadline(pier_timer *t) {
  struct client *c = t->data;
  fprintf(stderr, "no echo after %d ms, giving up\n", DEADLINE_MS);
  if (pier_cancel(&c->op) != 0)     /* PIER_ENOENT: not pending, so */
    pier_cancel(&c->resolve_op);    /* it is the name lookup */
}
/* guide: end */

/* guide: connect */
static void on_connected(pier_op *op, int status);

static int start_client(struct client *c) {
  int rc = pier_socket_open(c->loop, pier_protocol_find("tcp4"), 0,
                            &c->sock);
  if (rc != 0) return rc;
  pier_socket_set_data(c->sock, c);
  c->op.data = c;
  return pier_connect(c->sock, &c->op, (const struct sockaddr *)&c->server,
                      c->server_len, NULL, NULL, on_connected);
}
/* guide: end */

/* guide: resolve */
static void on_resolved(pier_op *op, int status) {
  struct client *c = op->data;
  int rc;
  if (status != 0) {
    fprintf(stderr, "resolve: %s\n", pier_strerror(status));
    pier_timer_stop(&c->deadline);
    return;
  }
  /* op->addrinfo is a list like getaddrinfo's: take the first entry */
  memcpy(&c->server, op->addrinfo->ai_addr, op->addrinfo->ai_addrlen);
  c->server_len = op->addrinfo->ai_addrlen;
  pier_freeaddrinfo(op->addrinfo);
  rc = start_client(c);
  if (rc != 0) {
    fprintf(stderr, "connect: %s\n", pier_strerror(rc));
    if (c->sock) pier_close(c->sock, on_client_closed);
    else pier_timer_stop(&c->deadline);
  }
}

static int resolve(struct client *c, const char *host, const char *port) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_INET;        /* the server listens on IPv4 */
  hints.ai_socktype = SOCK_STREAM;
  c->resolve_op.data = c;
  return pier_resolve(c->loop, &c->resolve_op, host, port, &hints,
                      on_resolved);
}
/* guide: end */

/* guide: client-io */
static void on_client_sent(pier_op *op, int status);
static void on_echo(pier_op *op, int status);

static void on_connected(pier_op *op, int status) {
  struct client *c = op->data;
  pier_buf out[3];
  int i;
  if (status != 0) {                /* PIER_ECONNREFUSED, ... */
    fprintf(stderr, "connect: %s\n", pier_strerror(status));
    pier_close(c->sock, on_client_closed);
    return;
  }
  for (i = 0; i < 3; i++)
    out[i] = pier_buf_init((void *)c->msg[i], strlen(c->msg[i]));
  if (pier_send(c->sock, &c->op, out, 3, 0, on_client_sent) != 0)
    pier_close(c->sock, on_client_closed);
}

static void on_client_sent(pier_op *op, int status) {
  struct client *c = op->data;
  pier_buf in;
  if (status != 0) {
    pier_close(c->sock, on_client_closed);
    return;
  }
  in = pier_buf_init(c->echo, op->bytes);  /* exactly what was sent */
  if (pier_recv(c->sock, &c->op, &in, 1, PIER_MSG_WAITALL, on_echo) != 0)
    pier_close(c->sock, on_client_closed);
}
/* guide: end */

/* guide: client-close */
static void on_echo(pier_op *op, int status) {
  struct client *c = op->data;
  if (status == 0) {
    c->got = op->bytes;
    c->ok = echo_matches(c);
    printf("overlapped: %zu bytes back, %s\n", c->got,
           c->ok ? "as sent" : "NOT as sent");
  } else {
    fprintf(stderr, "receive: %s\n", pier_strerror(status));
  }
  pier_shutdown(c->sock, PIER_SHUT_WR);      /* "no more from me" */
  pier_close(c->sock, on_client_closed);
}
/* guide: end */

/* guide: client-run */
static int run_overlapped(struct client *c, const char *host,
                          const char *port) {
  int rc;
  pier_timer_init(c->loop, &c->deadline);
  c->deadline.data = c;
  rc = resolve(c, host, port);
  if (rc != 0) return rc;
  pier_timer_start(&c->deadline, DEADLINE_MS, 0, on_deadline);  /* once */
  pier_loop_run(c->loop, PIER_RUN_DEFAULT);  /* until nothing is alive */
  return c->ok ? 0 : PIER_EPROTO;
}
/* guide: end */

/* ------------------------------------------------------------ blocking */

/* guide: blocking */
/* The same exchange with blocking calls: no callbacks, no loop running.
   Each call returns when it is done, its results in op; pier_poll bounds
   the wait for the echo. */
static int run_blocking(struct client *c) {
  pier_socket *s;
  pier_op op;
  pier_buf out[3], in;
  int i, rc;
  memset(&op, 0, sizeof op);
  rc = pier_socket_open(c->loop, pier_protocol_find("tcp4"), 0, &s);
  if (rc != 0) return rc;
  rc = pier_connect(s, &op, (const struct sockaddr *)&c->server,
                    c->server_len, NULL, NULL, NULL);   /* NULL: blocks */
  for (i = 0; i < 3; i++)
    out[i] = pier_buf_init((void *)c->msg[i], strlen(c->msg[i]));
  if (rc == 0) rc = pier_send(s, &op, out, 3, 0, NULL);
  if (rc == 0) {                    /* wait for the echo, not for ever */
    pier_pollfd pfd;
    pfd.socket = s;
    pfd.events = PIER_POLLIN;
    pfd.revents = 0;
    rc = pier_poll(&pfd, 1, DEADLINE_MS);   /* sockets ready, or 0 */
    rc = rc > 0 ? 0 : rc == 0 ? PIER_ETIMEDOUT : rc;
  }
  in = pier_buf_init(c->echo, c->len);
  if (rc == 0) rc = pier_recv(s, &op, &in, 1, PIER_MSG_WAITALL, NULL);
  if (rc == 0) {
    c->got = op.bytes;
    printf("blocking: %zu bytes back, %s\n", c->got,
           echo_matches(c) ? "as sent" : "NOT as sent");
    if (!echo_matches(c)) rc = PIER_EPROTO;
  }
  pier_shutdown(s, PIER_SHUT_WR);
  pier_close(s, NULL);
  pier_loop_run(c->loop, PIER_RUN_DEFAULT);  /* let the close complete */
  return rc;
}
/* guide: end */

/* ------------------------------------------------------------ events */

/* guide: events */
/* Receive what is ready, without waiting (the socket is non-blocking). */
static void drain(struct client *c) {
  pier_op op;
  for (;;) {
    pier_buf in = pier_buf_init(c->echo + c->got, sizeof c->echo - c->got);
    int rc;
    memset(&op, 0, sizeof op);
    rc = pier_recv(c->sock, &op, &in, 1, 0, NULL);  /* re-enables READ */
    if (rc != 0 || op.bytes == 0) return;  /* EWOULDBLOCK, or the end */
    c->got += op.bytes;
    if (c->got == c->len) {                /* all of it: we are done too */
      c->ok = echo_matches(c);
      pier_shutdown(c->sock, PIER_SHUT_WR);
      return;
    }
  }
}

static void on_events(pier_socket *s, unsigned events) {
  struct client *c = pier_socket_get_data(s);
  pier_net_events ev;
  (void)events;                      /* the record so far; read it all: */
  if (pier_enum_network_events(s, &ev) != 0) return;
  if (ev.events & PIER_EV_READ) drain(c);
  if (ev.events & PIER_EV_CLOSE) {   /* the server closed after our end */
    printf("events: %zu bytes back, %s; closed %s\n", c->got,
           c->ok ? "as sent" : "NOT as sent",
           ev.errors[PIER_EV_CLOSE_BIT] ? "by a reset" : "in order");
    pier_event_select(s, 0, NULL);   /* stop watching */
    pier_loop_unref(c->loop);        /* and let the loop end */
    pier_close(s, NULL);
  }
}

static int run_events(struct client *c) {
  pier_op op;
  pier_buf out[3];
  int i, rc, on = 1;
  memset(&op, 0, sizeof op);
  c->got = 0;
  c->ok = 0;
  rc = pier_socket_open(c->loop, pier_protocol_find("tcp4"), 0, &c->sock);
  if (rc != 0) return rc;
  pier_socket_set_data(c->sock, c);
  rc = pier_connect(c->sock, &op, (const struct sockaddr *)&c->server,
                    c->server_len, NULL, NULL, NULL);
  if (rc == 0) rc = pier_ioctl(c->sock, PIER_FIONBIO, &on);
  for (i = 0; i < 3; i++)
    out[i] = pier_buf_init((void *)c->msg[i], strlen(c->msg[i]));
  if (rc == 0) rc = pier_send(c->sock, &op, out, 3, 0, NULL);
  if (rc == 0)
    rc = pier_event_select(c->sock, PIER_EV_READ | PIER_EV_CLOSE, on_events);
  if (rc != 0) {
    pier_close(c->sock, NULL);
    pier_loop_run(c->loop, PIER_RUN_DEFAULT);
    return rc;
  }
  pier_loop_ref(c->loop);            /* selected events keep nothing alive */
  pier_loop_run(c->loop, PIER_RUN_DEFAULT);
  return c->ok ? 0 : PIER_EPROTO;
}
/* guide: end */

/* ------------------------------------------------------------ main */

static void usage(FILE *to) {
  fprintf(to,
    "usage: guide-client --port N [--host NAME]\n"
    "  The client of doc/guide.md: three echoes from guide-server\n"
    "  (overlapped, blocking, network events), every byte checked.\n"
    "  --port N     the server's port, 1-65535 (required)\n"
    "  --host NAME  the server's IPv4 address or name (default 127.0.0.1)\n"
    "  --help       this text\n"
    "  PIER_BACKEND=name picks the provider (default: the first usable).\n");
}

/* The port argument: a whole number in 1-65535, or NULL with a message. */
static const char *port_arg(const char *text) {
  char *end;
  long v;
  if (text == NULL) {
    fprintf(stderr, "guide-client: --port needs a value\n");
    return NULL;
  }
  v = strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 1 || v > 65535) {
    fprintf(stderr, "guide-client: --port %s: not a port in 1-65535\n",
            text);
    return NULL;
  }
  return text;
}

int main(int argc, char **argv) {
  struct client c;
  const char *host = "127.0.0.1", *port = NULL;
  int i, rc;
  memset(&c, 0, sizeof c);
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--port") == 0) {
      if ((port = port_arg(argv[++i])) == NULL) return 2;
    } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      host = argv[++i];
    } else {
      fprintf(stderr, "guide-client: bad argument %s\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (port == NULL) {
    fprintf(stderr, "guide-client: --port is required\n");
    return 2;
  }
  c.msg[0] = "Hello";
  c.msg[1] = ", pier";
  c.msg[2] = " guide!";
  c.len = strlen(c.msg[0]) + strlen(c.msg[1]) + strlen(c.msg[2]);

  rc = pier_loop_new(NULL, &c.loop);
  if (rc != 0) {
    fprintf(stderr, "pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  rc = run_overlapped(&c, host, port);
  if (rc == 0) rc = run_blocking(&c);
  if (rc == 0) rc = run_events(&c);
  if (rc != 0) fprintf(stderr, "guide-client: %s\n", pier_strerror(rc));
  if (pier_loop_free(c.loop) != 0) return 1;
  return rc == 0 ? 0 : 1;
}
