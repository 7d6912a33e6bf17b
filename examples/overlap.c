/* SPDX-License-Identifier: MIT */
/*
 * examples/overlap.c - the "overlap" sample: a single-threaded echo server
 * built on overlapped operations, several receives in flight per
 * connection, scatter receives and gather sends.
 *
 * What it shows
 *   - Several overlapped receives pending on one socket at once (NSLOTS per
 *     connection, each with its own pier_op and buffers).  pier completes
 *     the receives of a socket in the order they were started, and its sends
 *     too ("in order per direction"), so echoing each receive's bytes as it
 *     completes keeps the stream in order without any sequence numbers.
 *   - Scatter: each receive fills a 16-byte head buffer, then a body buffer;
 *     gather: the echo sends exactly the filled part of both, in one send.
 *   - A slot goes round: receive -> send its bytes back -> receive again.
 *   - End of stream: when a receive completes with 0 bytes the client is
 *     done; once our sends are through we close, which cancels the receives
 *     still pending (they complete with PIER_ECANCELED, exactly once).
 *
 * How to run it
 *   overlap [-p port]    serve on 127.0.0.1:port (default 5003) until killed;
 *                        try `nc 127.0.0.1 5003`
 *   overlap --selftest   the server and NCLIENTS clients on one loop: each
 *                        client streams STREAM_BYTES bytes of a pattern and
 *                        checks that the echo is the same stream, in order
 *   overlap --help       the options, their ranges and defaults
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest:
 *   overlap: pier 0.1.0 on provider libevent, listening on 127.0.0.1:41331
 *   overlap: connection 1 open, 4 receives posted
 *   ...
 *   overlap: client 1: 262144 bytes echoed in order
 *   overlap: connection 1 done: 262144 bytes in 93 receives
 *   ...
 *   overlap: selftest ok
 * and exit status 0 (1 on any failure; 2 for a bad command line, with a
 * message naming the argument).
 *
 * Build in the tree (make examples/overlap) or against an installed pier:
 *   cc overlap.c $(pkg-config --cflags --libs pier) -o overlap
 */
#include <pier.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSLOTS 4                   /* receives in flight per connection */
#define HEAD 16                    /* scatter: first buffer */
#define BODY 4096                  /* scatter: second buffer */
#define MAX_CONNS 32
#define NCLIENTS 3                 /* selftest */
#define DEFAULT_PORT 5003
#define STREAM_BYTES (256 * 1024)  /* selftest: bytes each client sends */
#define CHUNK 10000                /* selftest: bytes per client send */
#define DEADLINE_MS 20000

/* ------------------------------------------------------------------ */
/* the server                                                          */
/* ------------------------------------------------------------------ */

struct conn;

/* One slot: an op and its two buffers, receiving or sending. */
struct slot {
  struct conn *conn;
  pier_op op;
  char head[HEAD], body[BODY];
};

struct conn {
  int id;
  pier_socket *sock;        /* NULL: free */
  struct slot slot[NSLOTS];
  int pending;              /* slots with an operation in flight */
  int sends;                /* of which sends */
  int eof, closing;
  size_t bytes, receives;
};

static pier_loop *loop;
static pier_socket *listener;
static pier_op accept_op;
static struct conn conns[MAX_CONNS];
static int next_id, failures, listener_closing;

static struct sockaddr_in loopback(unsigned port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((unsigned short)port);
  return sin;
}

static void on_conn_closed(pier_socket *s) {
  struct conn *c = pier_socket_get_data(s);
  printf("overlap: connection %d done: %zu bytes in %zu receives\n", c->id,
         c->bytes, c->receives);
  c->sock = NULL;
}

static void conn_close(struct conn *c) {
  if (c->closing) return;
  c->closing = 1;
  int rc = pier_close(c->sock, on_conn_closed);
  if (rc != 0) {
    fprintf(stderr, "overlap: pier_close: %s\n", pier_strerror(rc));
    failures++;
  }
}

static void on_recv(pier_op *op, int status);

/* Post a scatter receive on one slot: head first, then body. */
static void post_recv(struct slot *sl) {
  struct conn *c = sl->conn;
  pier_buf in[2] = {pier_buf_init(sl->head, HEAD), pier_buf_init(sl->body, BODY)};
  int rc = pier_recv(c->sock, &sl->op, in, 2, 0, on_recv);
  if (rc != 0) {
    fprintf(stderr, "overlap: pier_recv: %s\n", pier_strerror(rc));
    failures++;
    conn_close(c);
    return;
  }
  c->pending++;
}

static void on_sent(pier_op *op, int status) {
  struct slot *sl = op->data;
  struct conn *c = sl->conn;
  c->pending--;
  c->sends--;
  if (status != 0) {
    if (status != PIER_ECANCELED) {
      fprintf(stderr, "overlap: send: %s\n", pier_strerror(status));
      failures++;
    }
    conn_close(c);
    return;
  }
  if (c->closing) return;
  if (c->eof) {
    /* The client is done; close once the last echo has gone out.  The
       receives still pending then complete with PIER_ECANCELED. */
    if (c->sends == 0) conn_close(c);
    return;
  }
  post_recv(sl); /* the slot goes round */
}

static void on_recv(pier_op *op, int status) {
  struct slot *sl = op->data;
  struct conn *c = sl->conn;
  c->pending--;
  if (c->closing || c->eof) return; /* cancelled, or after the end */
  if (status != 0) {
    if (status != PIER_ECONNRESET) {
      fprintf(stderr, "overlap: recv: %s\n", pier_strerror(status));
      failures++;
    }
    conn_close(c);
    return;
  }
  if (op->bytes == 0) { /* end of stream */
    c->eof = 1;
    if (c->sends == 0) conn_close(c);
    return;
  }
  c->bytes += op->bytes;
  c->receives++;
  /* Gather: send back exactly what landed, head first, then body.  This
     receive completed before the ones posted after it, so this send is
     started - and will complete - before theirs: the order holds. */
  size_t n = op->bytes;
  pier_buf out[2];
  size_t nb = 1;
  out[0] = pier_buf_init(sl->head, n < HEAD ? n : HEAD);
  if (n > HEAD) out[nb++] = pier_buf_init(sl->body, n - HEAD);
  int rc = pier_send(c->sock, &sl->op, out, nb, 0, on_sent);
  if (rc != 0) {
    fprintf(stderr, "overlap: pier_send: %s\n", pier_strerror(rc));
    failures++;
    conn_close(c);
    return;
  }
  c->pending++;
  c->sends++;
}

static void start_accept(void);

static void on_accept(pier_op *op, int status) {
  if (status == PIER_ECANCELED && listener_closing) return;
  if (status != 0) {
    fprintf(stderr, "overlap: accept: %s\n", pier_strerror(status));
    failures++;
    return;
  }
  struct conn *c = NULL;
  for (int i = 0; i < MAX_CONNS && c == NULL; i++)
    if (conns[i].sock == NULL) c = &conns[i];
  if (c == NULL) {
    fprintf(stderr, "overlap: too many connections, closing one\n");
    pier_close(op->accepted, NULL);
  } else {
    memset(c, 0, sizeof *c);
    c->id = ++next_id;
    c->sock = op->accepted;
    pier_socket_set_data(c->sock, c);
    for (int i = 0; i < NSLOTS; i++) {
      c->slot[i].conn = c;
      c->slot[i].op.data = &c->slot[i];
      post_recv(&c->slot[i]);
    }
    printf("overlap: connection %d open, %d receives posted\n", c->id, NSLOTS);
  }
  start_accept();
}

static void start_accept(void) {
  int rc = pier_accept(listener, &accept_op, NULL, NULL, on_accept);
  if (rc != 0) {
    fprintf(stderr, "overlap: pier_accept: %s\n", pier_strerror(rc));
    failures++;
  }
}

/* ------------------------------------------------------------------ */
/* the selftest's clients: stream a pattern, check the echo            */
/* ------------------------------------------------------------------ */

struct client {
  int id;
  pier_socket *sock;
  pier_op send_op, recv_op;   /* one send and one receive in flight */
  size_t sent, received;
  unsigned char *out, *in;    /* STREAM_BYTES each */
  int done;
};

static struct client clients[NCLIENTS];
static int clients_done;
static pier_timer deadline;

static void client_send_next(struct client *k);
static void client_recv_next(struct client *k);

static void client_end(struct client *k, int status, const char *what) {
  if (k->done) return;
  k->done = 1;
  if (status != 0) {
    fprintf(stderr, "overlap: client %d: %s: %s\n", k->id, what,
            pier_strerror(status));
    failures++;
  } else if (k->received != STREAM_BYTES ||
             memcmp(k->in, k->out, STREAM_BYTES) != 0) {
    fprintf(stderr, "overlap: client %d: echo differs (%zu bytes back)\n",
            k->id, k->received);
    failures++;
  } else {
    printf("overlap: client %d: %d bytes echoed in order\n", k->id,
           STREAM_BYTES);
  }
  int rc = pier_close(k->sock, NULL);
  if (rc != 0) fprintf(stderr, "overlap: pier_close: %s\n", pier_strerror(rc));
  if (++clients_done == NCLIENTS) {
    listener_closing = 1;
    if ((rc = pier_close(listener, NULL)) != 0)
      fprintf(stderr, "overlap: pier_close: %s\n", pier_strerror(rc));
    pier_timer_stop(&deadline);
  }
}

static void on_client_sent(pier_op *op, int status) {
  struct client *k = op->data;
  if (k->done) return;
  if (status != 0) { client_end(k, status, "send"); return; }
  k->sent += op->bytes;
  client_send_next(k);
}

static void client_send_next(struct client *k) {
  if (k->sent == STREAM_BYTES) {
    /* Everything is out: half-close, the server sees the end of stream. */
    int rc = pier_shutdown(k->sock, PIER_SHUT_WR);
    if (rc != 0) client_end(k, rc, "pier_shutdown");
    return;
  }
  size_t n = STREAM_BYTES - k->sent < CHUNK ? STREAM_BYTES - k->sent : CHUNK;
  /* A gather of two uneven pieces, to cross the server's buffer edges. */
  pier_buf out[2] = {pier_buf_init(k->out + k->sent, n / 3),
                     pier_buf_init(k->out + k->sent + n / 3, n - n / 3)};
  int rc = pier_send(k->sock, &k->send_op, out, 2, 0, on_client_sent);
  if (rc != 0) client_end(k, rc, "pier_send");
}

static void on_client_recv(pier_op *op, int status) {
  struct client *k = op->data;
  if (k->done) return;
  if (status != 0) { client_end(k, status, "recv"); return; }
  if (op->bytes == 0) { client_end(k, 0, "end of stream"); return; }
  k->received += op->bytes;
  client_recv_next(k);
}

static void client_recv_next(struct client *k) {
  if (k->received == STREAM_BYTES) {
    client_end(k, 0, "echo");
    return;
  }
  pier_buf in = pier_buf_init(k->in + k->received, STREAM_BYTES - k->received);
  int rc = pier_recv(k->sock, &k->recv_op, &in, 1, 0, on_client_recv);
  if (rc != 0) client_end(k, rc, "pier_recv");
}

static void on_client_connected(pier_op *op, int status) {
  struct client *k = op->data;
  if (status != 0) { client_end(k, status, "connect"); return; }
  client_send_next(k);
  client_recv_next(k);
}

static void on_deadline(pier_timer *t) {
  (void)t;
  fprintf(stderr, "overlap: selftest did not finish in %d ms\n", DEADLINE_MS);
  failures++;
  pier_loop_stop(loop);
}

static int start_clients(unsigned port) {
  static unsigned char data[NCLIENTS][2][STREAM_BYTES];
  struct sockaddr_in to = loopback(port);
  for (int i = 0; i < NCLIENTS; i++) {
    struct client *k = &clients[i];
    k->id = i + 1;
    k->out = data[i][0];
    k->in = data[i][1];
    for (size_t j = 0; j < STREAM_BYTES; j++)
      k->out[j] = (unsigned char)((j * 7 + j / 251 + (size_t)k->id) & 0xff);
    k->send_op.data = k->recv_op.data = k;
    int rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &k->sock);
    if (rc == 0)
      rc = pier_connect(k->sock, &k->send_op, (struct sockaddr *)&to, sizeof to,
                        NULL, NULL, on_client_connected);
    if (rc != 0) {
      fprintf(stderr, "overlap: client %d: %s\n", k->id, pier_strerror(rc));
      return rc;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* A usage error: name the argument and what is wrong; exit status 2. */
static void usage_error(const char *arg, const char *why) {
  fprintf(stderr, "overlap: %s: %s (overlap --help lists the options)\n", arg,
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
    fprintf(stderr, "overlap: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: overlap [-p PORT]\n"
    "       overlap --selftest | --help\n"
    "Echo server on 127.0.0.1 with several overlapped receives in flight "
    "per\n"
    "connection, until killed.\n"
    "  -p PORT     listen on PORT, 0 to 65535 (0: any free port); default "
    "%d\n"
    "  --selftest  the server and %d clients on one loop, every byte checked\n"
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
    fprintf(stderr, "overlap: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  struct sockaddr_in addr = loopback(port);
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &listener);
  if (rc == 0 && !selftest) rc = pier_setsockopt(listener, PIER_SO_REUSEADDR, 1);
  if (rc == 0) rc = pier_bind(listener, (struct sockaddr *)&addr, sizeof addr);
  if (rc == 0) rc = pier_listen(listener, 0);
  if (rc == 0) rc = pier_getsockname(listener, &ss, &len);
  if (rc != 0) {
    fprintf(stderr, "overlap: listener: %s\n", pier_strerror(rc));
    return 1;
  }
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  printf("overlap: pier %s on provider %s, listening on 127.0.0.1:%u\n",
         pier_version_string(), pier_loop_backend(loop), port);
  start_accept();

  if (selftest) {
    if ((rc = pier_timer_init(loop, &deadline)) == 0)
      rc = pier_timer_start(&deadline, DEADLINE_MS, 0, on_deadline);
    if (rc == 0) rc = start_clients(port);
    if (rc != 0) {
      fprintf(stderr, "overlap: selftest setup: %s\n", pier_strerror(rc));
      return 1;
    }
  }

  rc = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (rc < 0) {
    fprintf(stderr, "overlap: pier_loop_run: %s\n", pier_strerror(rc));
    failures++;
  }
  if ((rc = pier_loop_free(loop)) != 0) {
    fprintf(stderr, "overlap: pier_loop_free: %s\n", pier_strerror(rc));
    failures++;
  }
  if (selftest) printf("overlap: selftest %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
