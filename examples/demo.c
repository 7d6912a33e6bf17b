/* SPDX-License-Identifier: MIT */
/*
 * examples/demo.c - conditional accept and scatter/gather echo in one loop.
 *
 * This is the first pier program most people read, and it is meant to be
 * copied.  One process, one loop, one thread:
 *
 *   - a listener on 127.0.0.1 (port 0: the OS picks one) whose condition
 *     function decides every connection request before it is accepted, the
 *     way WSAAccept's condition function does in Winsock;
 *   - four clients on the same loop, each connecting with an overlapped
 *     pier_connect.  The condition function ACCEPTs client 1, REJECTs
 *     client 2, DEFERs client 3 once (the accept then completes with
 *     PIER_ETRYAGAIN and the request stays at the head of the queue, to be
 *     presented first by the next pier_accept) and ACCEPTs client 4;
 *   - every accepted client sends one message as a gather of 3 buffers;
 *     the server receives it with a scatter of 3 buffers (5, 7 and 64
 *     bytes) and echoes it back; the client checks every byte.
 *
 * A pier timer bounds the whole run to 10 seconds.  The program prints a
 * short transcript and exits 0 only if every outcome happened as planned.
 *
 * Things to notice when you copy it:
 *   - pier_op is the OVERLAPPED of pier: you own it, it must stay alive and
 *     untouched from the call that starts an operation until its callback
 *     has run, and it can be reused from inside that callback.  Here every
 *     connection has exactly one op, used for one operation at a time.
 *   - Every callback runs from pier_loop_run(), never from inside the call
 *     that started the operation, and every operation completes exactly
 *     once: success, error, or PIER_ECANCELED when its socket is closed.
 *   - pier_close() is asynchronous; the socket is gone once its close
 *     callback has run.  pier_loop_free() refuses (PIER_EBUSY) until then.
 *   - Errors are negative PIER_E* codes; pier_err_name() and
 *     pier_strerror() turn them into text.
 *
 * Build in the pier tree (make examples/demo) or against an installed pier:
 *   cc demo.c $(pkg-config --cflags --libs pier) -o demo
 * Run it with no arguments (demo --help says what it does); run with
 * PIER_BACKEND=name to pick a provider.
 */
#include <pier.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NCLIENTS 4
#define DEADLINE_MS 10000 /* the whole demo must finish within this */

/* What the condition function is going to do with each client. */
enum plan { PLAN_ACCEPT, PLAN_REJECT, PLAN_DEFER_THEN_ACCEPT };

static const char *const plan_names[] = {"ACCEPT", "REJECT", "DEFER"};

struct demo;

/* One connecting client: its socket, its op, its message and the echo. */
struct client {
  struct demo *demo;
  int id;                  /* 1..NCLIENTS, for the transcript */
  enum plan plan;
  unsigned port;           /* its local port: how the server tells it apart */
  pier_socket *sock;       /* NULL once closed */
  pier_op op;              /* connect, then send, then recv */
  char part[3][32];        /* the message, in three pieces (gather) */
  size_t part_len[3];
  size_t msg_len;          /* sum of part_len */
  char echo[96];           /* where the echo lands */
  int presented;           /* times the condition function saw it */
  int deferred;            /* times it was deferred */
  int accepted;            /* 1 once an accept completed with it */
  int finished;            /* 1 once its outcome is known */
  int ok;                  /* 1 if the outcome was the planned one */
};

/* One accepted connection on the server side: an echo loop. */
struct conn {
  struct demo *demo;
  struct client *peer;     /* the client at the other end (by port) */
  pier_socket *sock;       /* NULL once closed */
  pier_op op;              /* recv, then send, then recv ... */
  char b0[5], b1[7], b2[64]; /* scatter buffers: filled in this order */
  int rounds;
  int closing;
};

struct demo {
  pier_loop *loop;
  pier_socket *listener;   /* NULL once closed */
  int listener_closing;
  pier_op accept_op;
  pier_timer deadline;
  int timed_out;
  unsigned listen_port;
  struct client clients[NCLIENTS];
  struct conn conns[NCLIENTS];
  int nconns;
  int open_sockets;        /* sockets whose close callback has not run */
  struct client *deferred; /* set by DEFER: must be presented next */
  int rejected;
  int finished;            /* clients whose outcome is known */
  int failures;            /* anything that did not go to plan */
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

/* Report something that did not go to plan; the demo will exit 1. */
static void fail(struct demo *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("demo: FAILED: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  d->failures++;
}

/* pier prints nothing itself; this hook shows its warnings and errors. */
static void log_to_stderr(int level, const char *message, void *ctx) {
  (void)ctx;
  if (level <= PIER_LOG_WARN) fprintf(stderr, "pier: %s\n", message);
}

/* The port of an IPv4 or IPv6 address, in host order. */
static unsigned port_of(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->sa_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return 0;
}

/* 127.0.0.1:port */
static struct sockaddr_in loopback(unsigned port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((unsigned short)port);
  return sin;
}

/* The local port a pier socket is bound to, or 0. */
static unsigned local_port(pier_socket *s) {
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  if (pier_getsockname(s, &ss, &len) != 0) return 0;
  return port_of((const struct sockaddr *)&ss);
}

static struct client *client_by_port(struct demo *d, unsigned port) {
  for (int i = 0; i < NCLIENTS; i++)
    if (d->clients[i].port == port) return &d->clients[i];
  return NULL;
}

/* Every close callback lands here; the last one ends the demo. */
static void socket_closed(struct demo *d) {
  if (--d->open_sockets == 0) {
    /* Nothing is open any more: stop the deadline so that the loop has
       nothing left alive and pier_loop_run() returns. */
    pier_timer_stop(&d->deadline);
  }
}

static void on_listener_closed(pier_socket *s) {
  struct demo *d = pier_socket_get_data(s);
  d->listener = NULL;
  socket_closed(d);
}

static void on_client_closed(pier_socket *s) {
  struct client *c = pier_socket_get_data(s);
  c->sock = NULL;
  socket_closed(c->demo);
}

static void on_conn_closed(pier_socket *s) {
  struct conn *k = pier_socket_get_data(s);
  k->sock = NULL;
  socket_closed(k->demo);
}

/* Close the listener; its pending accept completes with PIER_ECANCELED. */
static void close_listener(struct demo *d) {
  if (d->listener && !d->listener_closing) {
    d->listener_closing = 1;
    pier_close(d->listener, on_listener_closed);
  }
}

/* Close a server connection once; a pending op completes ECANCELED. */
static void conn_close(struct conn *k) {
  if (!k->closing) {
    k->closing = 1;
    pier_close(k->sock, on_conn_closed);
  }
}

/* ------------------------------------------------------------------ */
/* the server: condition function, accept, echo                        */
/* ------------------------------------------------------------------ */

static void start_accept(struct demo *d);
static void conn_recv(struct conn *k);

/*
 * The condition function.  pier calls it for each pending connection
 * request, in queue order, before the connection is accepted; it sees the
 * caller's address (and, on protocols that carry it, the caller's connect
 * data and requested QoS).  It must decide at once, without blocking.
 */
static int condition(pier_accept_info *info, void *ctx) {
  struct demo *d = ctx;
  unsigned port = port_of(info->caller);
  struct client *c = client_by_port(d, port);

  if (c == NULL) { /* not one of ours: some other process on loopback */
    printf("unknown caller (port %u): condition -> REJECT\n", port);
    return PIER_CF_REJECT;
  }
  c->presented++;

  /* DEFER's promise: the deferred request is the next one presented. */
  if (d->deferred != NULL) {
    struct client *held = d->deferred;
    d->deferred = NULL;
    if (held != c)
      fail(d, "client %d was deferred but client %d was presented first",
           held->id, c->id);
    else {
      printf("client %d (port %u): presented again first -> ACCEPT\n", c->id,
             c->port);
      return PIER_CF_ACCEPT;
    }
  }

  int verdict;
  switch (c->plan) {
  case PLAN_REJECT:
    verdict = PIER_CF_REJECT;
    d->rejected++;
    break;
  case PLAN_DEFER_THEN_ACCEPT:
    verdict = c->deferred == 0 ? PIER_CF_DEFER : PIER_CF_ACCEPT;
    break;
  default:
    verdict = PIER_CF_ACCEPT;
    break;
  }
  if (verdict == PIER_CF_DEFER) {
    c->deferred++;
    d->deferred = c;
    printf("client %d (port %u): condition -> DEFER "
           "(accept completes with ETRYAGAIN)\n", c->id, c->port);
  } else {
    printf("client %d (port %u): condition -> %s\n", c->id, c->port,
           plan_names[verdict == PIER_CF_REJECT ? PLAN_REJECT : PLAN_ACCEPT]);
  }
  return verdict;
}

/* An accept completed: a new connection, a deferral, or cancellation. */
static void on_accept(pier_op *op, int status) {
  struct demo *d = op->data;

  if (status == PIER_ETRYAGAIN) {
    /* The condition function deferred a request.  It stays at the head of
       the queue; accepting again presents it first. */
    printf("server: accept completed with %s; accepting again\n",
           pier_err_name(status));
    start_accept(d);
    return;
  }
  if (status == PIER_ECANCELED && d->listener_closing)
    return; /* we closed the listener: the pending accept is cancelled */
  if (status != 0) {
    fail(d, "accept: %s", pier_strerror(status));
    close_listener(d);
    return;
  }

  /* op->accepted is a new socket and it is ours to close. */
  pier_socket *s = op->accepted;
  struct sockaddr_storage peer;
  size_t len = sizeof peer;
  struct client *c = NULL;
  if (pier_getpeername(s, &peer, &len) == 0)
    c = client_by_port(d, port_of((const struct sockaddr *)&peer));
  if (c == NULL || d->nconns == NCLIENTS) {
    fail(d, "accepted a connection from an unknown peer");
    pier_close(s, NULL);
  } else {
    d->open_sockets++;
    struct conn *k = &d->conns[d->nconns++];
    k->demo = d;
    k->peer = c;
    k->sock = s;
    k->op.data = k;
    pier_socket_set_data(s, k);
    c->accepted = 1;
    if (c->plan == PLAN_REJECT) fail(d, "client %d was accepted", c->id);
    conn_recv(k);
  }
  start_accept(d); /* keep taking requests until the listener is closed */
}

/* Post one overlapped accept with the condition function. */
static void start_accept(struct demo *d) {
  int rc = pier_accept(d->listener, &d->accept_op, condition, d, on_accept);
  if (rc != 0) fail(d, "pier_accept: %s", pier_strerror(rc));
}

static void on_conn_sent(pier_op *op, int status) {
  struct conn *k = op->data;
  if (k->closing) return; /* cancelled by our own close */
  if (status != 0) {
    fail(k->demo, "server send to client %d: %s", k->peer->id,
         pier_strerror(status));
    conn_close(k);
    return;
  }
  conn_recv(k); /* echoed; wait for more (or for the end of the stream) */
}

/* Received something: echo exactly those bytes back, as a gather. */
static void on_conn_recv(pier_op *op, int status) {
  struct conn *k = op->data;
  if (k->closing) return; /* cancelled by our own close */
  if (status != 0 || op->bytes == 0) {
    /* 0 bytes with status 0 is the end of the stream: the client is done. */
    if (status != 0)
      fail(k->demo, "server recv from client %d: %s", k->peer->id,
           pier_strerror(status));
    conn_close(k);
    return;
  }

  /* The scatter buffers were filled in order: b0, then b1, then b2. */
  char *base[3] = {k->b0, k->b1, k->b2};
  size_t cap[3] = {sizeof k->b0, sizeof k->b1, sizeof k->b2};
  pier_buf out[3];
  size_t left = op->bytes, n = 0;
  for (; n < 3 && left > 0; n++) {
    size_t take = left < cap[n] ? left : cap[n];
    out[n] = pier_buf_init(base[n], take);
    left -= take;
  }
  if (k->rounds++ == 0)
    printf("server: %zu bytes from client %d landed in %zu buffers "
           "(%zu+%zu+%zu), echoing\n", op->bytes, k->peer->id, n,
           n > 0 ? out[0].len : (size_t)0, n > 1 ? out[1].len : (size_t)0,
           n > 2 ? out[2].len : (size_t)0);

  /* The op is ours again inside its own callback: reuse it for the send.
     The pier_buf array is copied; the bytes it points at stay in k. */
  int rc = pier_send(k->sock, &k->op, out, n, 0, on_conn_sent);
  if (rc != 0) {
    fail(k->demo, "pier_send: %s", pier_strerror(rc));
    conn_close(k);
  }
}

/* Post a scatter receive of 3 buffers: 5, 7 and 64 bytes. */
static void conn_recv(struct conn *k) {
  pier_buf in[3] = {
    pier_buf_init(k->b0, sizeof k->b0),
    pier_buf_init(k->b1, sizeof k->b1),
    pier_buf_init(k->b2, sizeof k->b2),
  };
  int rc = pier_recv(k->sock, &k->op, in, 3, 0, on_conn_recv);
  if (rc != 0) {
    fail(k->demo, "pier_recv: %s", pier_strerror(rc));
    conn_close(k);
  }
}

/* ------------------------------------------------------------------ */
/* the clients: connect, gather send, receive the echo, verify         */
/* ------------------------------------------------------------------ */

/* A client's outcome is known: report it, close it, maybe end the demo. */
static void client_finish(struct client *c, int status, const char *stage) {
  struct demo *d = c->demo;
  if (c->finished) return; /* closed already (the deadline): PIER_ECANCELED */
  c->finished = 1;
  d->finished++;

  if (c->plan == PLAN_REJECT) {
    /* On POSIX a rejected request was accepted by the OS and then reset,
       so the client sees either a failed connect or, after a connect that
       succeeded, a reset (or end of stream) on its first receive. */
    switch (status) {
    case PIER_ECONNRESET: case PIER_ECONNREFUSED: case PIER_EREFUSED:
    case PIER_ECONNABORTED: case PIER_EPIPE:
      printf("client %d: %s (%s), as expected\n", c->id,
             pier_strerror(status), stage);
      c->ok = 1;
      break;
    case 0:
      if (strcmp(stage, "end of stream") == 0) {
        printf("client %d: connection closed by the server, as expected\n",
               c->id);
        c->ok = 1;
      } else {
        fail(d, "client %d was rejected but its echo came back", c->id);
      }
      break;
    default:
      fail(d, "client %d: %s: %s (expected a reset or a refusal)", c->id,
           stage, pier_strerror(status));
    }
  } else if (status == 0 && strcmp(stage, "echo") == 0) {
    printf("client %d: sent 3 buffers (%zu bytes), echo verified\n", c->id,
           c->msg_len);
    c->ok = 1;
  } else {
    fail(d, "client %d: %s: %s", c->id, stage,
         status ? pier_strerror(status) : "unexpected");
  }

  /* Closing a socket cancels its pending ops; this one has none left. */
  pier_close(c->sock, on_client_closed);

  /* All outcomes known: the listener (and its pending accept) can go. */
  if (d->finished == NCLIENTS) close_listener(d);
}

static void on_client_echo(pier_op *op, int status) {
  struct client *c = op->data;
  if (status != 0) { client_finish(c, status, "receiving the echo"); return; }
  if (op->bytes == 0) { client_finish(c, 0, "end of stream"); return; }

  /* Compare the echo with the three pieces we sent. */
  size_t off = 0;
  int same = op->bytes == c->msg_len;
  for (int i = 0; same && i < 3; i++) {
    same = memcmp(c->echo + off, c->part[i], c->part_len[i]) == 0;
    off += c->part_len[i];
  }
  if (!same) {
    client_finish(c, PIER_EPROTO, "echo differs from what was sent");
    return;
  }
  client_finish(c, 0, "echo");
}

static void on_client_sent(pier_op *op, int status) {
  struct client *c = op->data;
  if (status != 0) { client_finish(c, status, "sending"); return; }
  /* A send completes when every byte was accepted by the transport. */
  if (op->bytes != c->msg_len) {
    client_finish(c, PIER_EPROTO, "short send");
    return;
  }
  /* WAITALL: complete only once the whole echo is here (or on error or at
     the end of the stream), however TCP splits it on the way. */
  pier_buf in = pier_buf_init(c->echo, c->msg_len);
  int rc = pier_recv(c->sock, &c->op, &in, 1, PIER_MSG_WAITALL,
                     on_client_echo);
  if (rc != 0) client_finish(c, rc, "pier_recv");
}

static void on_client_connected(pier_op *op, int status) {
  struct client *c = op->data;
  if (status != 0) { client_finish(c, status, "connect"); return; }
  /* Gather: three separate buffers go out as one message, in order. */
  pier_buf out[3];
  for (int i = 0; i < 3; i++) out[i] = pier_buf_init(c->part[i], c->part_len[i]);
  int rc = pier_send(c->sock, &c->op, out, 3, 0, on_client_sent);
  if (rc != 0) client_finish(c, rc, "pier_send");
}

/* Open, bind to 127.0.0.1:0 (so the port is known before the connect) and
   start an overlapped connect to the listener. */
static int start_client(struct demo *d, struct client *c) {
  const pier_protocol_info *tcp4 = pier_protocol_find("tcp4");
  struct sockaddr_in any = loopback(0), server = loopback(d->listen_port);
  int rc = pier_socket_open(d->loop, tcp4, 0, &c->sock);
  if (rc != 0) return rc;
  d->open_sockets++;
  pier_socket_set_data(c->sock, c);
  c->op.data = c;
  if ((rc = pier_bind(c->sock, (struct sockaddr *)&any, sizeof any)) != 0)
    return rc;
  c->port = local_port(c->sock);
  return pier_connect(c->sock, &c->op, (struct sockaddr *)&server,
                      sizeof server, NULL, NULL, on_client_connected);
}

/* ------------------------------------------------------------------ */
/* the deadline, setup and the verdict                                 */
/* ------------------------------------------------------------------ */

/* Give up: close everything still open (each pending op then completes
   with PIER_ECANCELED) and let the loop drain. */
static void close_everything(struct demo *d) {
  close_listener(d);
  for (int i = 0; i < NCLIENTS; i++) {
    if (d->clients[i].sock && !d->clients[i].finished) {
      d->clients[i].finished = 1;
      pier_close(d->clients[i].sock, on_client_closed);
    }
  }
  for (int i = 0; i < d->nconns; i++)
    if (d->conns[i].sock) conn_close(&d->conns[i]);
}

/*
 * Fires after DEADLINE_MS only if something hangs: fail and close
 * everything.  It repeats every second; if draining hangs too, the second
 * firing stops the loop.  When the last socket closes the timer is stopped
 * (socket_closed) and never fires.
 */
static void on_deadline(pier_timer *t) {
  struct demo *d = t->data;
  if (d->timed_out++) {
    pier_loop_stop(d->loop);
    return;
  }
  fail(d, "timed out after %d ms", DEADLINE_MS);
  close_everything(d);
}

/* Did everything happen as planned? */
static int verdict(struct demo *d) {
  int accepted = 0, deferred = 0, ok = d->failures == 0;
  for (int i = 0; i < NCLIENTS; i++) {
    struct client *c = &d->clients[i];
    accepted += c->accepted;
    if (!c->ok) ok = 0;
    if (c->plan == PLAN_REJECT && c->accepted) ok = 0;
    if (c->plan != PLAN_REJECT && !c->accepted) ok = 0;
    if (c->plan == PLAN_DEFER_THEN_ACCEPT) {
      if (c->deferred == 1 && c->presented == 2 && c->accepted) deferred++;
      else ok = 0;
    }
  }
  printf("demo: %d accepted, %d rejected, %d deferred then accepted - %s\n",
         accepted, d->rejected, deferred, ok ? "ok" : "FAILED");
  return ok;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: demo [--help]\n"
    "Conditional accept and scatter/gather echo on one loop: a listener on "
    "a free\n"
    "port of 127.0.0.1 and %d clients, ACCEPTed, REJECTed and DEFERred by "
    "its\n"
    "condition function; exit status 0 when every outcome is as planned.  "
    "No options.\n"
    "  -h, --help  this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here).\n", NCLIENTS);
}

int main(int argc, char **argv) {
  static struct demo demo; /* static: zeroed, and outlives every callback */
  struct demo *d = &demo;
  const enum plan plans[NCLIENTS] = {PLAN_ACCEPT, PLAN_REJECT,
                                     PLAN_DEFER_THEN_ACCEPT, PLAN_ACCEPT};
  int rc;

  /* No options but --help: anything else is a usage error (exit 2). */
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
                    strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc > 1) {
    fprintf(stderr, "demo: %s: unknown argument (demo --help lists the options)\n", argv[1]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  pier_set_log(log_to_stderr, NULL);

  /* 1. A loop.  NULL options: the provider comes from $PIER_BACKEND, or
        the first usable one in priority order. */
  if ((rc = pier_loop_new(NULL, &d->loop)) != 0) {
    fprintf(stderr, "pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  printf("pier %s demo on provider %s\n", pier_version_string(),
         pier_loop_backend(d->loop));

  /* 2. The listener: open from the catalog entry "tcp4", bind to
        127.0.0.1:0, listen with the OS's maximum backlog. */
  struct sockaddr_in addr = loopback(0);
  rc = pier_socket_open(d->loop, pier_protocol_find("tcp4"), 0, &d->listener);
  if (rc == 0) {
    d->open_sockets++;
    pier_socket_set_data(d->listener, d);
    rc = pier_bind(d->listener, (struct sockaddr *)&addr, sizeof addr);
  }
  if (rc == 0) rc = pier_listen(d->listener, 0);
  if (rc != 0) {
    fail(d, "listener: %s", pier_strerror(rc));
  } else {
    d->listen_port = local_port(d->listener);
    printf("listening on 127.0.0.1:%u\n", d->listen_port);
  }

  /* 3. The clients, each with its own message in three pieces. */
  for (int i = 0; i < NCLIENTS && d->failures == 0; i++) {
    struct client *c = &d->clients[i];
    c->demo = d;
    c->id = i + 1;
    c->plan = plans[i];
    snprintf(c->part[0], sizeof c->part[0], "Hello");
    snprintf(c->part[1], sizeof c->part[1], ", pier ");
    snprintf(c->part[2], sizeof c->part[2], "from client %d", c->id);
    c->msg_len = 0;
    for (int j = 0; j < 3; j++) {
      c->part_len[j] = strlen(c->part[j]);
      c->msg_len += c->part_len[j];
    }
    if ((rc = start_client(d, c)) != 0)
      fail(d, "client %d: %s", c->id, pier_strerror(rc));
    else
      printf("client %d (port %u): connecting (plan: %s)\n", c->id, c->port,
             c->plan == PLAN_DEFER_THEN_ACCEPT ? "DEFER, then ACCEPT"
                                                : plan_names[c->plan]);
  }

  /* 4. The first accept; every completion posts the next one. */
  d->accept_op.data = d;
  if (d->failures == 0) start_accept(d);

  /* 5. The deadline, then run until every socket has closed. */
  pier_timer_init(d->loop, &d->deadline);
  d->deadline.data = d;
  pier_timer_start(&d->deadline, DEADLINE_MS, 1000, on_deadline);
  if (d->failures != 0) close_everything(d); /* setup failed: unwind */

  rc = pier_loop_run(d->loop, PIER_RUN_DEFAULT);
  if (rc < 0) fail(d, "pier_loop_run: %s", pier_strerror(rc));

  int ok = verdict(d);

  /* 6. Free the loop: refused (PIER_EBUSY) if anything is still open. */
  if ((rc = pier_loop_free(d->loop)) != 0) {
    fail(d, "pier_loop_free: %s", pier_strerror(rc));
    ok = 0;
  }
  return ok ? 0 : 1;
}
