/* SPDX-License-Identifier: MIT */
/*
 * examples/connect-data.c - connect-time data and messages: pier's message
 * protocol (catalog entries msg4 / msg6, doc/protocol.md), where a
 * connection carries a request and an answer before it exists, keeps the
 * boundaries of the messages sent on it, and ends with disconnect data
 * both ways.
 *
 * What it shows
 *   - Caller data: the client connects with a small text request,
 *       HELLO name=alice token=secret
 *     (pier_connect's pier_connect_data), and the server's condition
 *     function reads it (pier_accept_info.caller_data) before any
 *     connection exists for the application.  It decides:
 *       REJECT  a malformed request or a wrong token: the client's connect
 *               completes with PIER_EREFUSED - not the PIER_ECONNREFUSED of
 *               a port nobody listens on;
 *       DEFER   a good request while MAX_OPEN sessions are open: the accept
 *               completes with PIER_ETRYAGAIN, the request stays first in
 *               line (the client keeps waiting), and the server calls
 *               pier_accept again when a session ends - then that same
 *               request is presented first.  Until then no request behind
 *               it is presented either, not even one to be rejected;
 *       ACCEPT  a good request, answering with callee data
 *               (pier_accept_info.callee_data), WELCOME alice session=1,
 *               which the client's connect hands back in its buffer.
 *   - Messages: each pier_send is one message and arrives as one.  The
 *     server receives into a RECV_CHUNK-byte buffer, smaller than some
 *     messages: such a message comes in parts, every part but the last
 *     flagged PIER_MSG_PARTIAL, and the server puts it back together before
 *     it echoes it, in upper case, as one message.
 *   - Disconnect data: the client ends with pier_disconnect carrying
 *     "bye from alice"; the server's receive then completes with 0 bytes
 *     (the end of the stream), it reads the data with pier_recv_disconnect
 *     and answers with its own pier_disconnect carrying "bye from server",
 *     which the client reads the same way.
 *   - Limits set per socket: PIER_SO_MAX_MESSAGE (a larger message fails
 *     the receive with PIER_EMSGSIZE) and PIER_SO_HANDSHAKE_TIMEOUT (how
 *     long a request or an answer may take); accepted sockets take the
 *     listener's.
 *   Everything runs on one loop, on one thread, with overlapped operations,
 *   name resolution included (pier_resolve).
 *
 * How to run it
 *   connect-data server [-b address] [-p port]
 *       serve on address (numeric; default 127.0.0.1) and port (default
 *       5012) until killed; the token is "secret"
 *   connect-data client [-h host] [-p port] [--name name] [--token token]
 *       connect to host (default 127.0.0.1) as name (default guest) with
 *       token (default secret), send three messages, print the echoes;
 *       exit status 0 when all went through, 1 otherwise (a rejection too)
 *   connect-data --selftest
 *       the server and 4 clients on one loop, on a free port: three good
 *       clients at once and one with a wrong token (REJECTed).  The good
 *       ones hold their sessions open after the echoes until the server
 *       has DEFERred a request, so one is DEFERred on every run.  Checks
 *       every decision, that the deferred request comes back first, every
 *       echo, and the disconnect data both ways
 *   connect-data --help
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest (ports, session numbers and the order of
 * lines vary):
 *   connect-data: pier 0.1.0 on provider libevent, msg4 listening on 127.0.0.1 port 56159
 *   server: request from alice (port 40168) -> ACCEPT as session 1 (1 of 2 open)
 *   server: request from bob (port 40182) -> ACCEPT as session 2 (2 of 2 open)
 *   server: request from carol (port 40196) -> DEFER (2 of 2 sessions open)
 *   client alice: accepted: "WELCOME alice session=1"
 *   server: session 1 (alice): 5-byte message
 *   client alice: echo "HELLO"
 *   server: session 1 (alice): 12-byte message
 *   client alice: echo "HOW ARE YOU?"
 *   server: session 1 (alice): 132-byte message in 9 parts (PIER_MSG_PARTIAL)
 *   client alice: echo "THIS MESSAGE IS LONGER THAN THE SERVER'S RECEIVE ..."
 *   ...
 *   server: session 1 (alice): the client disconnected with "bye from alice"
 *   server: session 1 (alice) closed, 1 open
 *   server: request from carol (port 40196) -> ACCEPT as session 3 (2 of 2 open), the deferred one
 *   server: request from mallory (port 40204) -> REJECT (wrong token)
 *   client alice: the server disconnected with "bye from server"
 *   client carol: accepted: "WELCOME carol session=3"
 *   client mallory: rejected: connection request rejected by the listener
 *   ...
 *   connect-data: 3 accepted, 1 rejected, 1 deferred; 9 echoes, 3 in parts, disconnect data both ways: ok
 * and exit status 0 (1 on any failure; 2 for a bad command line, with a
 * message naming the argument).
 *
 * Build in the tree (make examples/connect-data) or against an installed
 * pier:
 *   cc connect-data.c $(pkg-config --cflags --libs pier) -o connect-data
 */
/* struct addrinfo's fields (pier_resolve) are POSIX: ask for them even
   under a strict -std=c99. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200112L
#endif
#include <pier.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PORT 5012
#define TOKEN "secret"       /* the one token the server takes */
#define MAX_OPEN 2           /* sessions open at once; more are DEFERred */
#define RECV_CHUNK 16        /* the server's receive buffer: smaller than
                                some messages, which then come in parts */
#define MAX_MSG 1024         /* the largest message either side takes */
#define NAME_MAX_LEN 32      /* request fields */
#define TOKEN_MAX_LEN 64
#define REQUEST_MAX 128      /* caller data the server reads */
#define ANSWER_MAX 128       /* room for callee data the client offers */
#define BYE_MAX 128          /* disconnect data read */
#define SERVER_BYE "bye from server"
#define REQUEST_TIMEOUT_MS 5000 /* server: a caller's request must be whole
                                   by then */
#define ANSWER_TIMEOUT_MS 10000 /* client: the wait for the answer, which
                                   includes any time spent DEFERred */
#define NCLIENTS 4           /* selftest */
#define DEADLINE_MS 15000    /* selftest */

/* What the client sends; the last one is longer than RECV_CHUNK many
   times over. */
static const char *const messages[] = {
  "hello",
  "how are you?",
  ("this message is longer than the server's receive buffer: it arrives "
   "there in parts flagged PIER_MSG_PARTIAL and is put back together"),
};
#define NMESSAGES (sizeof messages / sizeof messages[0])

static pier_loop *loop;
static int selftest, failures;

static unsigned port_of(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->sa_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return 0;
}

/* The catalog entry for an address: pier's message protocol over TCP. */
static const pier_protocol_info *msg_protocol(int family) {
  return pier_protocol_find(family == AF_INET6 ? "msg6" : "msg4");
}

/* ------------------------------------------------------------------ */
/* the request: "HELLO name=NAME token=TOKEN"                          */
/* ------------------------------------------------------------------ */

struct request {
  char name[NAME_MAX_LEN + 1];
  char token[TOKEN_MAX_LEN + 1];
};

/* A request field: printable, no spaces, 1..cap-1 characters. */
static int field_ok(const char *s, size_t cap) {
  size_t n = strlen(s);
  if (n == 0 || n >= cap) return 0;
  for (; *s; s++)
    if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 127) return 0;
  return 1;
}

/* Take "key=VALUE" at *p into out (cap bytes); VALUE ends at a space or
   at the end. */
static int take_field(const char **p, const char *key, char *out, size_t cap) {
  size_t k = strlen(key), n = 0;
  if (strncmp(*p, key, k) != 0) return 0;
  *p += k;
  while ((*p)[n] != '\0' && (*p)[n] != ' ') n++;
  if (n >= cap) return 0;
  memcpy(out, *p, n);
  out[n] = '\0';
  *p += n;
  return field_ok(out, cap);
}

/* Parse caller data.  It is bytes from the network, not a C string: check
   its length, copy it and terminate it before looking at it. */
static int parse_request(const void *data, size_t len, struct request *rq) {
  char text[REQUEST_MAX + 1];
  const char *p = text;
  if (data == NULL || len == 0 || len > REQUEST_MAX) return 0;
  memcpy(text, data, len);
  text[len] = '\0';
  if (strlen(text) != len) return 0; /* a NUL inside */
  if (strncmp(p, "HELLO ", 6) != 0) return 0;
  p += 6;
  if (!take_field(&p, "name=", rq->name, sizeof rq->name)) return 0;
  if (*p++ != ' ') return 0;
  if (!take_field(&p, "token=", rq->token, sizeof rq->token)) return 0;
  return *p == '\0';
}

/* ------------------------------------------------------------------ */
/* the server                                                          */
/* ------------------------------------------------------------------ */

struct server;

/* One accepted session: receive a message in parts, echo it, again ...
   until the client's disconnect. */
struct session {
  struct server *sv;
  pier_socket *sock;        /* NULL: the slot is free */
  pier_op op;               /* one operation at a time */
  int id;
  char name[NAME_MAX_LEN + 1];
  char chunk[RECV_CHUNK];   /* each receive lands here ... */
  char msg[MAX_MSG];        /* ... and is appended here */
  size_t len;               /* bytes of the message so far */
  int parts;                /* receives it took */
};

struct server {
  pier_socket *listener;
  pier_op op;               /* the address resolution, then the accepts */
  char address[64];         /* what to listen on */
  unsigned port;
  int accepting;            /* an accept is pending */
  int deferred;             /* the last accept completed with ETRYAGAIN */
  int closing;              /* the listener is being closed */
  int open;                 /* sessions open */
  int next_id;
  /* The request the condition function ACCEPTed last: on_accept names
     its session after it (one accept is pending at a time). */
  int accepted_id;
  char accepted_name[NAME_MAX_LEN + 1];
  char deferred_name[NAME_MAX_LEN + 1]; /* the request DEFERred, if any */
  int n_accept, n_reject, n_defer;
  int in_parts;             /* messages that came in more than one part */
  int byes;                 /* client disconnect data as expected */
  struct session sessions[MAX_OPEN];
};

static struct server server;
static pier_timer deadline; /* selftest */
static void start_clients(unsigned port);
static void release_held_clients(void);

/*
 * The condition function: pier runs it on the loop's thread for each
 * connection request whose caller data has arrived whole, in that order,
 * before the connection exists for us.  It must decide at once, without
 * blocking.  info->callee_data (info->callee_data_cap bytes, the room the
 * caller offered) takes the answer of an ACCEPT.
 */
static int condition(pier_accept_info *info, void *ctx) {
  struct server *sv = ctx;
  unsigned port = port_of(info->caller);
  struct request rq;

  if (!parse_request(info->caller_data, info->caller_data_len, &rq)) {
    printf("server: request from port %u -> REJECT (malformed)\n", port);
    sv->n_reject++;
    return PIER_CF_REJECT;
  }
  /* A real server would look the token up, and compare in constant time. */
  if (strcmp(rq.token, TOKEN) != 0) {
    printf("server: request from %s (port %u) -> REJECT (wrong token)\n",
           rq.name, port);
    sv->n_reject++;
    return PIER_CF_REJECT;
  }
  const char *again = "";
  if (sv->deferred_name[0] != '\0') {
    /* After a DEFER the next pier_accept presents the same request first. */
    if (strcmp(sv->deferred_name, rq.name) != 0) {
      fprintf(stderr, "server: %s came first, not the deferred %s\n", rq.name,
              sv->deferred_name);
      failures++;
    }
    sv->deferred_name[0] = '\0';
    again = ", the deferred one";
  }
  if (sv->open >= MAX_OPEN) {
    printf("server: request from %s (port %u) -> DEFER (%d of %d sessions "
           "open)\n", rq.name, port, sv->open, MAX_OPEN);
    strcpy(sv->deferred_name, rq.name);
    sv->n_defer++;
    return PIER_CF_DEFER;
  }

  sv->accepted_id = ++sv->next_id;
  strcpy(sv->accepted_name, rq.name);
  char answer[ANSWER_MAX];
  int n = snprintf(answer, sizeof answer, "WELCOME %s session=%d", rq.name,
                   sv->accepted_id);
  /* A caller that offered too little room gets no answer, but is in. */
  if (n > 0 && (size_t)n < sizeof answer && info->callee_data != NULL &&
      (size_t)n <= info->callee_data_cap) {
    memcpy(info->callee_data, answer, (size_t)n);
    info->callee_data_len = (size_t)n;
  }
  sv->n_accept++;
  /* open is raised in on_accept; count this one already. */
  printf("server: request from %s (port %u) -> ACCEPT as session %d (%d of "
         "%d open)%s\n", rq.name, port, sv->accepted_id, sv->open + 1,
         MAX_OPEN, again);
  return PIER_CF_ACCEPT;
}

static void on_accept(pier_op *op, int status);
static void session_recv(struct session *k);

static void start_accept(struct server *sv) {
  if (sv->accepting || sv->closing) return;
  int rc = pier_accept(sv->listener, &sv->op, condition, sv, on_accept);
  if (rc != 0) {
    fprintf(stderr, "server: pier_accept: %s\n", pier_strerror(rc));
    failures++;
    return;
  }
  sv->accepting = 1;
  sv->deferred = 0;
}

static void on_session_closed(pier_socket *s) {
  struct session *k = pier_socket_get_data(s);
  struct server *sv = k->sv;
  k->sock = NULL;
  sv->open--;
  printf("server: session %d (%s) closed, %d open\n", k->id, k->name, sv->open);
  /* A session is free: if a request was deferred, ask for it again now. */
  if (sv->deferred) start_accept(sv);
}

static void session_close(struct session *k) {
  int rc = pier_close(k->sock, on_session_closed);
  if (rc != 0 && rc != PIER_EALREADY)
    fprintf(stderr, "server: pier_close: %s\n", pier_strerror(rc));
}

/* Any error ends the session; a cancelled operation means it is closing. */
static void session_error(struct session *k, const char *what, int status) {
  if (status != PIER_ECANCELED) {
    fprintf(stderr, "server: session %d (%s): %s: %s\n", k->id, k->name, what,
            pier_strerror(status));
    failures++;
  }
  session_close(k);
}

static void on_session_disconnected(pier_op *op, int status) {
  struct session *k = op->data;
  if (status != 0) { session_error(k, "disconnect", status); return; }
  /* Our disconnect frame has gone out after every echo: done. */
  session_close(k);
}

/* The client's stream ended: read its disconnect data, answer with ours. */
static void session_end(struct session *k) {
  char bye[BYE_MAX];
  size_t n = 0;
  int rc = pier_recv_disconnect(k->sock, bye, sizeof bye - 1, &n);
  if (rc == 0) {
    if (n > sizeof bye - 1) n = sizeof bye - 1; /* n is what was sent */
    bye[n] = '\0';
    printf("server: session %d (%s): the client disconnected with \"%s\"\n",
           k->id, k->name, bye);
    char want[BYE_MAX];
    snprintf(want, sizeof want, "bye from %s", k->name);
    if (strcmp(bye, want) == 0) k->sv->byes++;
  } else if (rc == PIER_ENOTCONN) {
    /* The stream ended with no disconnect frame (pier_shutdown, a peer
       that is not pier). */
    printf("server: session %d (%s): the client ended without disconnect "
           "data\n", k->id, k->name);
  } else {
    session_error(k, "pier_recv_disconnect", rc);
    return;
  }
  rc = pier_disconnect(k->sock, &k->op, SERVER_BYE, strlen(SERVER_BYE),
                       on_session_disconnected);
  if (rc != 0) session_error(k, "pier_disconnect", rc);
}

static void on_session_sent(pier_op *op, int status) {
  struct session *k = op->data;
  if (status != 0) { session_error(k, "send", status); return; }
  k->len = 0; /* the echo is out: msg takes the next message */
  k->parts = 0;
  session_recv(k);
}

static void on_session_recv(pier_op *op, int status) {
  struct session *k = op->data;
  if (status != 0) { session_error(k, "receive", status); return; }
  if (op->bytes == 0) { session_end(k); return; } /* end of the stream */

  /* A part of one message - never bytes of two.  PIER_SO_MAX_MESSAGE
     keeps a whole one within msg. */
  if (op->bytes > sizeof k->msg - k->len) {
    session_error(k, "receive", PIER_EMSGSIZE);
    return;
  }
  memcpy(k->msg + k->len, k->chunk, op->bytes);
  k->len += op->bytes;
  k->parts++;
  if (op->flags & PIER_MSG_PARTIAL) { /* more of this message follows */
    session_recv(k);
    return;
  }

  /* The message is whole: echo it, in upper case, as one message. */
  if (k->parts > 1) {
    printf("server: session %d (%s): %lu-byte message in %d parts "
           "(PIER_MSG_PARTIAL)\n", k->id, k->name, (unsigned long)k->len,
           k->parts);
    k->sv->in_parts++;
  } else {
    printf("server: session %d (%s): %lu-byte message\n", k->id, k->name,
           (unsigned long)k->len);
  }
  for (size_t i = 0; i < k->len; i++)
    k->msg[i] = (char)toupper((unsigned char)k->msg[i]);
  pier_buf b = pier_buf_init(k->msg, k->len);
  int rc = pier_send(k->sock, &k->op, &b, 1, 0, on_session_sent);
  if (rc != 0) session_error(k, "pier_send", rc);
}

static void session_recv(struct session *k) {
  pier_buf b = pier_buf_init(k->chunk, sizeof k->chunk);
  int rc = pier_recv(k->sock, &k->op, &b, 1, 0, on_session_recv);
  if (rc != 0) session_error(k, "pier_recv", rc);
}

static void on_accept(pier_op *op, int status) {
  struct server *sv = op->data;
  sv->accepting = 0;
  if (status == PIER_ETRYAGAIN) {
    /* Deferred: do not ask again until a session has ended
       (on_session_closed).  The request waits first in line, and its
       caller keeps waiting for the answer.  A session may have ended
       between the condition function and this callback: then ask now. */
    if (sv->open < MAX_OPEN) start_accept(sv);
    else sv->deferred = 1;
    if (selftest) release_held_clients();
    return;
  }
  if (status == PIER_ECANCELED) return; /* the listener is closing */
  if (status != 0) {
    fprintf(stderr, "server: accept: %s\n", pier_strerror(status));
    failures++;
    start_accept(sv);
    return;
  }
  struct session *k = NULL;
  for (int i = 0; i < MAX_OPEN && k == NULL; i++)
    if (sv->sessions[i].sock == NULL) k = &sv->sessions[i];
  if (k == NULL) { /* cannot happen: the condition function keeps count */
    fprintf(stderr, "server: no free session\n");
    failures++;
    pier_close(op->accepted, NULL);
  } else {
    memset(k, 0, sizeof *k);
    k->sv = sv;
    k->sock = op->accepted;
    k->id = sv->accepted_id;
    strcpy(k->name, sv->accepted_name);
    k->op.data = k;
    pier_socket_set_data(k->sock, k);
    sv->open++;
    session_recv(k);
  }
  start_accept(sv);
}

static void server_fail(struct server *sv, const char *what, int rc) {
  fprintf(stderr, "server: %s: %s\n", what, pier_strerror(rc));
  failures++;
  if (sv->listener != NULL) {
    sv->closing = 1;
    pier_close(sv->listener, NULL);
  }
  if (selftest) pier_timer_stop(&deadline); /* then the loop runs out */
}

/* The address is resolved: open the listener on it and start accepting. */
static void on_server_resolved(pier_op *op, int status) {
  struct server *sv = op->data;
  struct addrinfo *ai = op->addrinfo;
  op->addrinfo = NULL;
  if (status != 0) { server_fail(sv, sv->address, status); return; }

  int rc = pier_socket_open(loop, msg_protocol(ai->ai_family), 0,
                            &sv->listener);
  if (rc == 0 && !selftest)
    rc = pier_setsockopt(sv->listener, PIER_SO_REUSEADDR, 1);
  /* Both limits pass to the accepted sockets. */
  if (rc == 0) rc = pier_setsockopt(sv->listener, PIER_SO_MAX_MESSAGE, MAX_MSG);
  if (rc == 0)
    rc = pier_setsockopt(sv->listener, PIER_SO_HANDSHAKE_TIMEOUT,
                         REQUEST_TIMEOUT_MS);
  if (rc == 0) rc = pier_bind(sv->listener, ai->ai_addr, ai->ai_addrlen);
  if (rc == 0) rc = pier_listen(sv->listener, 0);
  pier_freeaddrinfo(ai);

  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  if (rc == 0) rc = pier_getsockname(sv->listener, &ss, &len);
  if (rc != 0) { server_fail(sv, "listener", rc); return; }
  sv->port = port_of((struct sockaddr *)&ss);
  printf("connect-data: pier %s on provider %s, %s listening on %s port %u\n",
         pier_version_string(), pier_loop_backend(loop),
         pier_socket_protocol(sv->listener)->name, sv->address, sv->port);
  start_accept(sv);
  if (selftest) start_clients(sv->port);
}

static int server_start(struct server *sv, const char *address, unsigned port) {
  char service[16];
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
  snprintf(service, sizeof service, "%u", port);
  snprintf(sv->address, sizeof sv->address, "%s", address);
  sv->op.data = sv;
  return pier_resolve(loop, &sv->op, address, service, &hints,
                      on_server_resolved);
}

/* ------------------------------------------------------------------ */
/* the client                                                          */
/* ------------------------------------------------------------------ */

struct client {
  char name[NAME_MAX_LEN + 1];
  char token[TOKEN_MAX_LEN + 1];
  int expect_reject;        /* selftest: it brings a wrong token */
  pier_socket *sock;
  pier_op op;               /* one operation at a time */
  struct addrinfo *addrs, *next_addr; /* from pier_resolve, tried in turn */
  char request[REQUEST_MAX];
  char welcome[ANSWER_MAX + 1];
  pier_connect_data cd;     /* read by the connect until it completes */
  size_t sent;              /* messages sent */
  char echo[MAX_MSG + 1];
  size_t echo_len;
  int echoes;               /* echoes verified */
  int rejected;             /* the connect completed with PIER_EREFUSED */
  int held;                 /* selftest: waits to disconnect */
  int bye_ok;               /* the server's disconnect data as expected */
  int done, failed;
};

static struct client clients[NCLIENTS];
static int nclients, clients_done;

static void client_next(struct client *c);
static void client_connect_next(struct client *c);

/* The client's outcome is known: close its socket; the selftest ends
   when every client is done. */
static void client_done(struct client *c) {
  if (c->done) return;
  c->done = 1;
  pier_freeaddrinfo(c->addrs);
  c->addrs = c->next_addr = NULL;
  if (c->sock != NULL) {
    int rc = pier_close(c->sock, NULL);
    if (rc != 0) fprintf(stderr, "client %s: pier_close: %s\n", c->name,
                         pier_strerror(rc));
  }
  if (++clients_done == nclients && selftest) {
    server.closing = 1;
    int rc = pier_close(server.listener, NULL); /* cancels the accept */
    if (rc != 0) fprintf(stderr, "server: pier_close: %s\n", pier_strerror(rc));
    pier_timer_stop(&deadline);
  }
}

static void client_fail(struct client *c, const char *what, int status) {
  fprintf(stderr, "client %s: %s: %s\n", c->name, what,
          status ? pier_strerror(status) : "unexpected");
  c->failed = 1;
  client_done(c);
}

/* The end of the server's stream: its disconnect data is there to read. */
static void on_client_end(pier_op *op, int status) {
  struct client *c = op->data;
  if (status != 0) { client_fail(c, "receive", status); return; }
  if (op->bytes != 0) { client_fail(c, "a message after the echoes", 0); return; }
  char bye[BYE_MAX];
  size_t n = 0;
  int rc = pier_recv_disconnect(c->sock, bye, sizeof bye - 1, &n);
  if (rc != 0) { client_fail(c, "pier_recv_disconnect", rc); return; }
  if (n > sizeof bye - 1) n = sizeof bye - 1;
  bye[n] = '\0';
  printf("client %s: the server disconnected with \"%s\"\n", c->name, bye);
  c->bye_ok = strcmp(bye, SERVER_BYE) == 0;
  client_done(c);
}

/* Our disconnect frame is out: wait for the server's. */
static void on_client_disconnected(pier_op *op, int status) {
  struct client *c = op->data;
  if (status != 0) { client_fail(c, "disconnect", status); return; }
  /* Receives go on after our disconnect, until the server's. */
  pier_buf b = pier_buf_init(c->echo, sizeof c->echo - 1);
  int rc = pier_recv(c->sock, &c->op, &b, 1, 0, on_client_end);
  if (rc != 0) client_fail(c, "pier_recv", rc);
}

static void client_recv_echo(struct client *c);

static void on_client_echo(pier_op *op, int status) {
  struct client *c = op->data;
  if (status != 0) { client_fail(c, "receive", status); return; }
  if (op->bytes == 0) { client_fail(c, "the server ended early", 0); return; }
  c->echo_len += op->bytes;
  if (op->flags & PIER_MSG_PARTIAL) { /* not whole yet */
    client_recv_echo(c);
    return;
  }
  c->echo[c->echo_len] = '\0';
  printf("client %s: echo \"%s\"\n", c->name, c->echo);

  /* The echo must be the message sent, in upper case. */
  const char *m = messages[c->sent - 1];
  int same = strlen(m) == c->echo_len;
  for (size_t i = 0; same && i < c->echo_len; i++)
    same = toupper((unsigned char)m[i]) == (unsigned char)c->echo[i];
  if (!same) { client_fail(c, "the echo differs", 0); return; }
  c->echoes++;
  client_next(c);
}

/* Receive the echo into what is left of c->echo; with PIER_SO_MAX_MESSAGE
   at MAX_MSG a whole message always fits. */
static void client_recv_echo(struct client *c) {
  if (c->echo_len == MAX_MSG) { client_fail(c, "receive", PIER_EMSGSIZE); return; }
  pier_buf b = pier_buf_init(c->echo + c->echo_len, MAX_MSG - c->echo_len);
  int rc = pier_recv(c->sock, &c->op, &b, 1, 0, on_client_echo);
  if (rc != 0) client_fail(c, "pier_recv", rc);
}

static void on_client_sent(pier_op *op, int status) {
  struct client *c = op->data;
  if (status != 0) { client_fail(c, "send", status); return; }
  c->echo_len = 0;
  client_recv_echo(c);
}

/* Send the next message - one pier_send, one message - or, after the
   last, disconnect with data. */
static void client_next(struct client *c) {
  int rc;
  if (c->sent < NMESSAGES) {
    const char *m = messages[c->sent++];
    pier_buf b = pier_buf_init((void *)m, strlen(m));
    rc = pier_send(c->sock, &c->op, &b, 1, 0, on_client_sent);
    if (rc != 0) client_fail(c, "pier_send", rc);
    return;
  }
  if (selftest && server.n_defer == 0) {
    c->held = 1; /* see release_held_clients */
    return;
  }
  char bye[BYE_MAX];
  int n = snprintf(bye, sizeof bye, "bye from %s", c->name);
  /* The data is copied: bye may go out of scope. */
  rc = pier_disconnect(c->sock, &c->op, bye, (size_t)n, on_client_disconnected);
  if (rc != 0) client_fail(c, "pier_disconnect", rc);
}

static void on_client_connected(pier_op *op, int status) {
  struct client *c = op->data;
  if (status == PIER_EREFUSED) {
    /* The server's condition function said REJECT. */
    printf("client %s: rejected: %s\n", c->name, pier_strerror(status));
    c->rejected = 1;
    client_done(c);
    return;
  }
  if (status != 0) {
    if (c->next_addr != NULL && status != PIER_ETIMEDOUT) {
      /* Nobody there (PIER_ECONNREFUSED) or the like: try the next
         address the name resolved to. */
      pier_close(c->sock, NULL);
      c->sock = NULL;
      client_connect_next(c);
      return;
    }
    client_fail(c, "connect", status);
    return;
  }
  /* ACCEPTed: the callee data is in our buffer (c->cd.callee, that is
     c->welcome), callee_len bytes. */
  c->welcome[c->cd.callee_len] = '\0';
  printf("client %s: accepted: \"%s\"\n", c->name, c->welcome);
  char want[ANSWER_MAX];
  int n = snprintf(want, sizeof want, "WELCOME %s session=", c->name);
  if (strncmp(c->welcome, want, (size_t)n) != 0) {
    client_fail(c, "unexpected answer", 0);
    return;
  }
  pier_freeaddrinfo(c->addrs); /* connected: the addresses are done with */
  c->addrs = c->next_addr = NULL;
  client_next(c);
}

/* Open a socket for the next address and connect with the request. */
static void client_connect_next(struct client *c) {
  const struct addrinfo *ai = c->next_addr;
  c->next_addr = ai->ai_next;
  int rc = pier_socket_open(loop, msg_protocol(ai->ai_family), 0, &c->sock);
  if (rc == 0) rc = pier_setsockopt(c->sock, PIER_SO_MAX_MESSAGE, MAX_MSG);
  if (rc == 0)
    rc = pier_setsockopt(c->sock, PIER_SO_HANDSHAKE_TIMEOUT, ANSWER_TIMEOUT_MS);
  if (rc == 0) {
    /* Caller data out, and room for the callee data to come back. */
    c->cd.caller = c->request;
    c->cd.caller_len = strlen(c->request);
    c->cd.callee = c->welcome;
    c->cd.callee_cap = sizeof c->welcome - 1;
    rc = pier_connect(c->sock, &c->op, ai->ai_addr, ai->ai_addrlen, &c->cd,
                      NULL, on_client_connected);
  }
  if (rc != 0) client_fail(c, "connect", rc);
}

static void on_client_resolved(pier_op *op, int status) {
  struct client *c = op->data;
  c->addrs = c->next_addr = op->addrinfo;
  op->addrinfo = NULL;
  if (status != 0) { client_fail(c, "resolve", status); return; }
  client_connect_next(c);
}

static int client_start(struct client *c, const char *host, unsigned port) {
  char service[16];
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(service, sizeof service, "%u", port);
  snprintf(c->request, sizeof c->request, "HELLO name=%s token=%s", c->name,
           c->token);
  c->op.data = c;
  return pier_resolve(loop, &c->op, host, service, &hints, on_client_resolved);
}

/* ------------------------------------------------------------------ */
/* the selftest                                                        */
/* ------------------------------------------------------------------ */

static void on_deadline(pier_timer *t) {
  (void)t;
  fprintf(stderr, "connect-data: selftest did not finish in %d ms\n",
          DEADLINE_MS);
  failures++;
  pier_loop_stop(loop);
}

/*
 * The good clients keep their sessions open after the echoes until the
 * server has deferred a request: so MAX_OPEN sessions are open when the
 * third good request is presented, and it is DEFERred on every run,
 * whatever the timing (one client's name resolution may finish after
 * another's whole session).  The server calls this after a DEFER.
 */
static void release_held_clients(void) {
  for (int i = 0; i < nclients; i++) {
    if (clients[i].held) {
      clients[i].held = 0;
      client_next(&clients[i]); /* disconnect now */
    }
  }
}

/* Called once the server listens: every client at once. */
static void start_clients(unsigned port) {
  static const struct { const char *name, *token; } who[NCLIENTS] = {
    {"alice", TOKEN}, {"bob", TOKEN}, {"carol", TOKEN}, {"mallory", "guess"},
  };
  for (int i = 0; i < NCLIENTS; i++) {
    struct client *c = &clients[i];
    strcpy(c->name, who[i].name);
    strcpy(c->token, who[i].token);
    c->expect_reject = strcmp(who[i].token, TOKEN) != 0;
    nclients++;
    int rc = client_start(c, "127.0.0.1", port);
    if (rc != 0) client_fail(c, "pier_resolve", rc);
  }
}

static int selftest_result(void) {
  int echoes = 0, byes = 0, ok = failures == 0;
  for (int i = 0; i < nclients; i++) {
    const struct client *c = &clients[i];
    echoes += c->echoes;
    byes += c->bye_ok;
    if (c->failed || !c->done) ok = 0;
    if (c->expect_reject ? !c->rejected
                         : c->echoes != (int)NMESSAGES || !c->bye_ok)
      ok = 0;
  }
  int good = NCLIENTS - 1;
  ok = ok && server.n_accept == good && server.n_reject == 1 &&
       server.n_defer >= 1 && echoes == good * (int)NMESSAGES &&
       server.in_parts == good && server.byes == good && byes == good;
  printf("connect-data: %d accepted, %d rejected, %d deferred; %d echoes, "
         "%d in parts, disconnect data %s: %s\n", server.n_accept,
         server.n_reject, server.n_defer, echoes, server.in_parts,
         server.byes == good && byes == good ? "both ways" : "MISSING",
         ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* A usage error: name the argument and what is wrong; exit status 2. */
static void usage_error(const char *arg, const char *why) {
  fprintf(stderr, "connect-data: %s: %s (connect-data --help lists the options)\n", arg,
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
    fprintf(stderr, "connect-data: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: connect-data server [-b ADDRESS] [-p PORT]\n"
    "       connect-data client [-h HOST] [-p PORT] [--name NAME] "
    "[--token TOKEN]\n"
    "       connect-data --selftest | --help\n"
    "pier's message protocol (msg4/msg6): connect data, messages, "
    "disconnect data.\n"
    "server: accepts the token \"%s\", at most %d sessions at once, echoes "
    "messages\n"
    "in upper case, until killed.\n"
    "  -b ADDRESS     the numeric address to listen on; default 127.0.0.1\n"
    "  -p PORT        the port, 0 to 65535 (0: any free port); default %d\n"
    "client: connects with NAME and TOKEN, sends %d messages, prints the "
    "echoes.\n"
    "  -h HOST        the server's name or address; default 127.0.0.1\n"
    "  -p PORT        the server's port, 1 to 65535; default %d\n"
    "  --name NAME    1 to %d characters, no spaces; default guest\n"
    "  --token TOKEN  1 to %d characters, no spaces; default %s\n"
    "  --selftest     server and %d clients in this process, on a free "
    "port\n"
    "  --help         this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here).\n",
    TOKEN, MAX_OPEN, DEFAULT_PORT, (int)NMESSAGES, DEFAULT_PORT,
    NAME_MAX_LEN, TOKEN_MAX_LEN, TOKEN, NCLIENTS);
}

/* A --name or --token value: a request field (field_ok), or a usage error. */
static const char *field(const char *opt, const char *s, size_t max) {
  char why[64];
  if (!field_ok(s, max + 1)) {
    snprintf(why, sizeof why, "1 to %zu characters without spaces expected",
             max);
    usage_error(opt, why);
  }
  return s;
}

int main(int argc, char **argv) {
  enum { NONE, SERVER, CLIENT, SELFTEST } mode = NONE;
  const char *host = "127.0.0.1", *name = "guest", *token = TOKEN;
  long port = DEFAULT_PORT;
  int rc;

  /* The mode first, then its options (-h is the client's host here). */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0) { usage(stdout); return 0; }
    if (i == 1 && strcmp(a, "server") == 0) mode = SERVER;
    else if (i == 1 && strcmp(a, "client") == 0) mode = CLIENT;
    else if (i == 1 && strcmp(a, "--selftest") == 0) mode = SELFTEST;
    else if (mode == NONE) usage_error(a, "server, client or --selftest first");
    else if (mode == SELFTEST) usage_error(a, "unknown after --selftest");
    else if (strcmp(a, "-p") == 0)
      port = number(a, value(argc, argv, &i), mode == SERVER ? 0 : 1, 65535);
    else if (mode == SERVER && strcmp(a, "-b") == 0) host = value(argc, argv, &i);
    else if (mode == CLIENT && strcmp(a, "-h") == 0) host = value(argc, argv, &i);
    else if (mode == CLIENT && strcmp(a, "--name") == 0)
      name = field(a, value(argc, argv, &i), NAME_MAX_LEN);
    else if (mode == CLIENT && strcmp(a, "--token") == 0)
      token = field(a, value(argc, argv, &i), TOKEN_MAX_LEN);
    else usage_error(a, mode == SERVER ? "unknown option of server"
                                       : "unknown option of client");
  }
  if (mode == NONE) usage_error("server, client or --selftest", "required");
  selftest = mode == SELFTEST;
  setvbuf(stdout, NULL, _IOLBF, 0);

  if ((rc = pier_loop_new(NULL, &loop)) != 0) {
    fprintf(stderr, "connect-data: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  if (mode == CLIENT) {
    /* One client; in the selftest the server starts them once it listens. */
    strcpy(clients[0].name, name);
    strcpy(clients[0].token, token);
    nclients = 1;
    rc = client_start(&clients[0], host, (unsigned)port);
  } else {
    rc = server_start(&server, selftest ? "127.0.0.1" : host,
                      selftest ? 0 : (unsigned)port);
  }
  if (rc == 0 && selftest) {
    if ((rc = pier_timer_init(loop, &deadline)) == 0)
      rc = pier_timer_start(&deadline, DEADLINE_MS, 0, on_deadline);
  }
  if (rc != 0) {
    fprintf(stderr, "connect-data: start: %s\n", pier_strerror(rc));
    return 1;
  }

  /* Until nothing is left: every socket closed, the deadline stopped. */
  rc = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (rc < 0) {
    fprintf(stderr, "connect-data: pier_loop_run: %s\n", pier_strerror(rc));
    failures++;
  }
  if ((rc = pier_loop_free(loop)) != 0) {
    fprintf(stderr, "connect-data: pier_loop_free: %s\n", pier_strerror(rc));
    failures++;
  }
  if (selftest) return selftest_result();
  if (mode == CLIENT)
    return failures == 0 && !clients[0].failed && !clients[0].rejected &&
                   clients[0].echoes == (int)NMESSAGES
               ? 0 : 1;
  return failures ? 1 : 0;
}
