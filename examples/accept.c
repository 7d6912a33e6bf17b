/*
 * examples/accept.c - conditional accept: a condition function that
 * ACCEPTs, REJECTs and DEFERs connection requests, as WSAAccept's does.
 *
 * What it shows
 *   The server's condition function sees each pending connection request
 *   before it is accepted - the caller's address and port - and decides:
 *     REJECT  a caller that is not on loopback (a stand-in for a deny-list),
 *             and every third new request (a stand-in for a rate limit);
 *     DEFER   while MAX_ACTIVE connections are already open: the accept
 *             completes with PIER_ETRYAGAIN, the request stays at the head
 *             of the queue, and the server asks again only when one of its
 *             connections has closed - then that same request comes first;
 *     ACCEPT  everything else; the connection echoes one message.
 *   Each decision is printed with the caller's port.  Everything runs on one
 *   loop, on one thread, with overlapped operations.
 *
 * How to run it
 *   accept [-p port]    serve on 127.0.0.1:port (default 5002) until killed;
 *                       try several `nc 127.0.0.1 5002` at once
 *   accept --selftest   the server and NCLIENTS clients on one loop, on a free
 *                       port; checks every decision and every echo
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest (ports and the order of lines vary):
 *   accept: pier 0.1.0 on provider libevent, listening on 127.0.0.1:39715
 *   condition: request from port 50702 -> ACCEPT (1 open)
 *   condition: request from port 50710 -> ACCEPT (2 open)
 *   condition: request from port 50724 -> DEFER (2 open, the limit)
 *   ...
 *   condition: request from port 50724 -> REJECT (every third request)
 *   client 3: refused (connection reset by peer), as planned
 *   client 1: echo verified
 *   ...
 *   accept: 4 accepted, 1 rejected, 2 deferred; 4 echoes, 1 refused: ok
 * and exit status 0 (1 on any failure).
 *
 * Build in the tree (make examples/accept) or against an installed pier:
 *   cc accept.c $(pkg-config --cflags --libs pier) -o accept
 */
#include <pier.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ACTIVE 2     /* connections open at once; more are DEFERred */
#define REJECT_EVERY 3   /* every third new request is REJECTed */
#define MAX_CONNS 64     /* server connection slots */
#define NCLIENTS 5       /* selftest clients */
#define DEADLINE_MS 15000

/* One accepted connection: receive, echo, receive ... until end of stream. */
struct conn {
  struct server *sv;
  pier_socket *sock; /* NULL: the slot is free */
  pier_op op;
  char buf[512];
};

struct server {
  pier_loop *loop;
  pier_socket *listener;
  pier_op accept_op;
  int accepting;      /* an accept is pending */
  int deferred;       /* the last accept completed with PIER_ETRYAGAIN */
  int closing;        /* the listener is being closed */
  int active;         /* open connections */
  unsigned requests;  /* new requests counted for REJECT_EVERY */
  int n_accept, n_reject, n_defer;
  int failures;
  struct conn conns[MAX_CONNS];
};

/* A selftest client: connect, send one message, check the echo. */
struct client {
  struct server *sv;
  int id;
  pier_socket *sock;
  pier_op op;
  char msg[64], echo[64];
  size_t len;
  int done;           /* outcome known */
  int echoed, refused;
};

static struct client clients[NCLIENTS];
static int clients_done, client_failures;
static pier_timer deadline;

static unsigned port_of(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->sa_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return 0;
}

static int is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6) {
    static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 1};
    return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, one, 16) == 0;
  }
  return 0;
}

static struct sockaddr_in loopback(unsigned port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((unsigned short)port);
  return sin;
}

/* ------------------------------------------------------------------ */
/* the server                                                          */
/* ------------------------------------------------------------------ */

/*
 * The condition function: runs on the loop's thread for each pending
 * request, in queue order, before the connection exists for us; it must
 * decide at once without blocking.
 */
static int condition(pier_accept_info *info, void *ctx) {
  struct server *sv = ctx;
  unsigned port = port_of(info->caller);

  if (!is_loopback(info->caller)) {
    printf("condition: request from port %u -> REJECT (not loopback)\n", port);
    sv->n_reject++;
    return PIER_CF_REJECT;
  }
  if (sv->active >= MAX_ACTIVE) {
    /* Not counted: it will be presented again, first, when we ask. */
    printf("condition: request from port %u -> DEFER (%d open, the limit)\n",
           port, sv->active);
    sv->n_defer++;
    return PIER_CF_DEFER;
  }
  if (++sv->requests % REJECT_EVERY == 0) {
    printf("condition: request from port %u -> REJECT (every %s request)\n",
           port, REJECT_EVERY == 3 ? "third" : "nth");
    sv->n_reject++;
    return PIER_CF_REJECT;
  }
  sv->n_accept++;
  /* active is raised in on_accept; count this one already. */
  printf("condition: request from port %u -> ACCEPT (%d open)\n", port,
         sv->active + 1);
  return PIER_CF_ACCEPT;
}

static void on_accept(pier_op *op, int status);
static void conn_recv(struct conn *k);

static void start_accept(struct server *sv) {
  if (sv->accepting || sv->closing) return;
  int rc = pier_accept(sv->listener, &sv->accept_op, condition, sv, on_accept);
  if (rc != 0) {
    fprintf(stderr, "accept: pier_accept: %s\n", pier_strerror(rc));
    sv->failures++;
    return;
  }
  sv->accepting = 1;
  sv->deferred = 0;
}

static void on_conn_closed(pier_socket *s) {
  struct conn *k = pier_socket_get_data(s);
  struct server *sv = k->sv;
  k->sock = NULL;
  sv->active--;
  /* A slot is free: if a request was deferred, ask for it again now. */
  if (sv->deferred) start_accept(sv);
}

static void conn_close(struct conn *k) {
  int rc = pier_close(k->sock, on_conn_closed);
  if (rc != 0 && rc != PIER_EALREADY)
    fprintf(stderr, "accept: pier_close: %s\n", pier_strerror(rc));
}

static void on_conn_sent(pier_op *op, int status) {
  struct conn *k = op->data;
  if (status != 0) {
    if (status != PIER_ECANCELED)
      fprintf(stderr, "accept: send: %s\n", pier_strerror(status));
    conn_close(k);
    return;
  }
  conn_recv(k);
}

static void on_conn_recv(pier_op *op, int status) {
  struct conn *k = op->data;
  if (status != 0 || op->bytes == 0) { /* error, or end of stream */
    if (status != 0 && status != PIER_ECANCELED && status != PIER_ECONNRESET)
      fprintf(stderr, "accept: recv: %s\n", pier_strerror(status));
    conn_close(k);
    return;
  }
  pier_buf b = pier_buf_init(k->buf, op->bytes);
  int rc = pier_send(k->sock, &k->op, &b, 1, 0, on_conn_sent);
  if (rc != 0) {
    fprintf(stderr, "accept: pier_send: %s\n", pier_strerror(rc));
    conn_close(k);
  }
}

static void conn_recv(struct conn *k) {
  pier_buf b = pier_buf_init(k->buf, sizeof k->buf);
  int rc = pier_recv(k->sock, &k->op, &b, 1, 0, on_conn_recv);
  if (rc != 0) {
    fprintf(stderr, "accept: pier_recv: %s\n", pier_strerror(rc));
    conn_close(k);
  }
}

static void on_accept(pier_op *op, int status) {
  struct server *sv = op->data;
  sv->accepting = 0;
  if (status == PIER_ETRYAGAIN) {
    /* Deferred: do not ask again until a connection has closed
       (on_conn_closed).  The request waits at the head of the queue. */
    sv->deferred = 1;
    return;
  }
  if (status == PIER_ECANCELED) return; /* the listener is closing */
  if (status != 0) {
    fprintf(stderr, "accept: accept: %s\n", pier_strerror(status));
    sv->failures++;
    return;
  }
  struct conn *k = NULL;
  for (int i = 0; i < MAX_CONNS && k == NULL; i++)
    if (sv->conns[i].sock == NULL) k = &sv->conns[i];
  sv->active++;
  if (k == NULL) { /* cannot happen with MAX_ACTIVE < MAX_CONNS */
    pier_close(op->accepted, NULL);
    sv->active--;
  } else {
    k->sv = sv;
    k->sock = op->accepted;
    k->op.data = k;
    pier_socket_set_data(k->sock, k);
    conn_recv(k);
  }
  start_accept(sv);
}

/* ------------------------------------------------------------------ */
/* the selftest's clients                                              */
/* ------------------------------------------------------------------ */

static void end_selftest(struct server *sv) {
  sv->closing = 1;
  int rc = pier_close(sv->listener, NULL); /* cancels the pending accept */
  if (rc != 0) fprintf(stderr, "accept: pier_close: %s\n", pier_strerror(rc));
  pier_timer_stop(&deadline);
}

/* The client's outcome is known: record it and close its socket. */
static void client_done(struct client *c, int status, const char *what) {
  if (c->done) return;
  c->done = 1;
  if (status == 0 && strcmp(what, "echo") == 0) {
    printf("client %d: echo verified\n", c->id);
    c->echoed = 1;
  } else if (status == PIER_ECONNRESET || status == PIER_ECONNREFUSED ||
             status == PIER_EREFUSED || status == PIER_ECONNABORTED ||
             (status == 0 && strcmp(what, "end of stream") == 0)) {
    /* A REJECTed request: on POSIX the OS completed the handshake, so the
       client sees a reset (or the end of the stream) on its first receive;
       with SO_CONDITIONAL_ACCEPT on Windows the connect itself fails. */
    printf("client %d: refused (%s), as planned\n", c->id,
           status ? pier_strerror(status) : what);
    c->refused = 1;
  } else {
    fprintf(stderr, "client %d: %s: %s\n", c->id, what,
            status ? pier_strerror(status) : "unexpected");
    client_failures++;
  }
  int rc = pier_close(c->sock, NULL);
  if (rc != 0) fprintf(stderr, "client %d: pier_close: %s\n", c->id,
                       pier_strerror(rc));
  if (++clients_done == NCLIENTS) end_selftest(c->sv);
}

static void on_client_echo(pier_op *op, int status) {
  struct client *c = op->data;
  if (status != 0) { client_done(c, status, "receive"); return; }
  if (op->bytes == 0) { client_done(c, 0, "end of stream"); return; }
  if (op->bytes != c->len || memcmp(c->echo, c->msg, c->len) != 0) {
    client_done(c, PIER_EPROTO, "echo differs");
    return;
  }
  client_done(c, 0, "echo");
}

static void on_client_sent(pier_op *op, int status) {
  struct client *c = op->data;
  if (status != 0) { client_done(c, status, "send"); return; }
  pier_buf b = pier_buf_init(c->echo, c->len);
  int rc = pier_recv(c->sock, &c->op, &b, 1, PIER_MSG_WAITALL, on_client_echo);
  if (rc != 0) client_done(c, rc, "pier_recv");
}

static void on_client_connected(pier_op *op, int status) {
  struct client *c = op->data;
  if (status != 0) { client_done(c, status, "connect"); return; }
  pier_buf b = pier_buf_init(c->msg, c->len);
  int rc = pier_send(c->sock, &c->op, &b, 1, 0, on_client_sent);
  if (rc != 0) client_done(c, rc, "pier_send");
}

static void on_deadline(pier_timer *t) {
  struct server *sv = t->data;
  fprintf(stderr, "accept: selftest did not finish in %d ms\n", DEADLINE_MS);
  sv->failures++;
  pier_loop_stop(sv->loop);
}

static int start_clients(struct server *sv, unsigned port) {
  struct sockaddr_in to = loopback(port);
  for (int i = 0; i < NCLIENTS; i++) {
    struct client *c = &clients[i];
    c->sv = sv;
    c->id = i + 1;
    c->op.data = c;
    c->len = (size_t)snprintf(c->msg, sizeof c->msg, "hello from client %d",
                              c->id);
    int rc = pier_socket_open(sv->loop, pier_protocol_find("tcp4"), 0,
                              &c->sock);
    if (rc == 0)
      rc = pier_connect(c->sock, &c->op, (struct sockaddr *)&to, sizeof to,
                        NULL, NULL, on_client_connected);
    if (rc != 0) {
      fprintf(stderr, "client %d: %s\n", c->id, pier_strerror(rc));
      return rc;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv) {
  static struct server sv;
  unsigned port = 5002;
  int selftest = 0, rc;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--selftest") == 0) selftest = 1;
    else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) port = (unsigned)atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: accept [-p port] | accept --selftest\n");
      return 2;
    }
  }
  if (selftest) port = 0;
  setvbuf(stdout, NULL, _IOLBF, 0);

  if ((rc = pier_loop_new(NULL, &sv.loop)) != 0) {
    fprintf(stderr, "accept: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  struct sockaddr_in addr = loopback(port);
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  rc = pier_socket_open(sv.loop, pier_protocol_find("tcp4"), 0, &sv.listener);
  if (rc == 0 && !selftest) rc = pier_setsockopt(sv.listener, PIER_SO_REUSEADDR, 1);
  if (rc == 0) rc = pier_bind(sv.listener, (struct sockaddr *)&addr, sizeof addr);
  if (rc == 0) rc = pier_listen(sv.listener, 0);
  if (rc == 0) rc = pier_getsockname(sv.listener, &ss, &len);
  if (rc != 0) {
    fprintf(stderr, "accept: listener: %s\n", pier_strerror(rc));
    if (sv.listener) pier_close(sv.listener, NULL);
    pier_loop_run(sv.loop, PIER_RUN_DEFAULT);
    pier_loop_free(sv.loop);
    return 1;
  }
  port = port_of((struct sockaddr *)&ss);
  printf("accept: pier %s on provider %s, listening on 127.0.0.1:%u\n",
         pier_version_string(), pier_loop_backend(sv.loop), port);

  sv.accept_op.data = &sv;
  start_accept(&sv);
  if (selftest) {
    if ((rc = pier_timer_init(sv.loop, &deadline)) == 0) {
      deadline.data = &sv;
      rc = pier_timer_start(&deadline, DEADLINE_MS, 0, on_deadline);
    }
    if (rc == 0) rc = start_clients(&sv, port);
    if (rc != 0) {
      fprintf(stderr, "accept: selftest setup: %s\n", pier_strerror(rc));
      return 1;
    }
  }

  rc = pier_loop_run(sv.loop, PIER_RUN_DEFAULT);
  if (rc < 0) {
    fprintf(stderr, "accept: pier_loop_run: %s\n", pier_strerror(rc));
    sv.failures++;
  }
  if ((rc = pier_loop_free(sv.loop)) != 0) {
    fprintf(stderr, "accept: pier_loop_free: %s\n", pier_strerror(rc));
    sv.failures++;
  }
  if (!selftest) return sv.failures ? 1 : 0;

  int echoes = 0, refused = 0;
  for (int i = 0; i < NCLIENTS; i++) {
    echoes += clients[i].echoed;
    refused += clients[i].refused;
  }
  /* 5 requests: the 3rd one counted is rejected, the other 4 accepted; the
     limit of 2 open connections makes at least one request wait. */
  int ok = sv.failures == 0 && client_failures == 0 && sv.n_accept == 4 &&
           sv.n_reject == 1 && sv.n_defer >= 1 && echoes == 4 && refused == 1;
  printf("accept: %d accepted, %d rejected, %d deferred; %d echoes, %d "
         "refused: %s\n", sv.n_accept, sv.n_reject, sv.n_defer, echoes,
         refused, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
