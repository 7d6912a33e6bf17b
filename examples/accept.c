/* SPDX-License-Identifier: MIT */
/*
 * examples/accept.c - non-blocking, conditional accept: a server whose
 * condition function ACCEPTs, REJECTs and DEFERs connection requests, as
 * WSAAccept's does, driven either by pier_poll (the WSAPoll way) or by
 * network events (the WSAEventSelect way).
 *
 * What it shows
 *   - A non-blocking listener (PIER_SOCK_NONBLOCK) and the blocking form of
 *     pier_accept (cb == NULL) with a condition function: the call decides
 *     the requests waiting and returns PIER_EWOULDBLOCK when none is left.
 *     Accepted sockets take the listener's mode: non-blocking too.
 *   - What tells the server when to call it again, two ways:
 *       default   pier_poll over the listener and every connection, on one
 *                 thread; the loop is never run while serving (it runs at
 *                 the end, for the close callbacks);
 *       --events  pier_event_select(ACCEPT) on the listener and
 *                 (READ | WRITE | CLOSE) on each connection, the callbacks
 *                 reading the record with pier_enum_network_events, on a
 *                 running loop.  Each event is recorded again only after
 *                 the call that re-enables it (ACCEPT: pier_accept; READ: a
 *                 receive; WRITE: a send that returned PIER_EWOULDBLOCK), so
 *                 every handler calls until PIER_EWOULDBLOCK.
 *   - The condition function sees each pending request - the caller's
 *     address - before the connection exists for the server, and decides:
 *       REJECT  a caller that is not on loopback (a stand-in for a
 *               deny-list), and every third new request (a rate limit);
 *       DEFER   while MAX_ACTIVE connections are open: pier_accept returns
 *               PIER_ETRYAGAIN and the request stays at the head of the
 *               queue.  The server stops watching the listener (else it
 *               would be told about the same request again and again) and
 *               calls pier_accept itself when a connection has closed -
 *               then that same request comes first;
 *       ACCEPT  everything else; the connection echoes what it receives
 *               until the caller closes.
 *     Each decision is printed with the caller's port.
 *
 * How to run it
 *   accept -p PORT [--events]
 *       serve on 127.0.0.1:PORT until killed, with pier_poll (default) or
 *       with network events; try several `nc 127.0.0.1 PORT` at once
 *   accept --selftest
 *       twice, with pier_poll then with --events, each on a free port:
 *       NCLIENTS clients (overlapped operations on a loop of their own, in
 *       a second thread) connect at once and send a message each; checks
 *       every decision and every echo
 *   accept --help
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest (ports and the order of lines vary):
 *   accept: pier 0.1.0 on provider libevent, pier_poll, listening on 127.0.0.1:39715
 *   condition: request from port 50702 -> ACCEPT (1 open)
 *   condition: request from port 50710 -> ACCEPT (2 open)
 *   condition: request from port 50724 -> DEFER (2 open, the limit)
 *   client 1: echo verified
 *   ...
 *   condition: request from port 50724 -> REJECT (every third request)
 *   client 3: refused (connection reset by peer), as planned
 *   ...
 *   accept: pier_poll: 4 accepted, 1 rejected, 2 deferred; 4 echoes, 1 refused: ok
 *   accept: pier 0.1.0 on provider libevent, network events, listening on 127.0.0.1:39716
 *   ...
 *   accept: network events: 4 accepted, 1 rejected, 1 deferred; 4 echoes, 1 refused: ok
 *   accept: selftest ok
 * and exit status 0 (1 on any failure; 2 for a bad command line, with a
 * message naming the argument).
 *
 * Build in the tree (make examples/accept) or against an installed pier:
 *   cc accept.c $(pkg-config --cflags --libs pier) -lpthread -o accept
 */
/* nanosleep is POSIX: ask for it even under a strict -std=c99. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200112L
#endif
#include <pier.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* threads (for the selftest's clients): pthreads, or Win32            */
/* ------------------------------------------------------------------ */
#ifdef _WIN32
#  include <windows.h>
typedef HANDLE thread_t;
#  define THREAD_FN(name) static DWORD WINAPI name(LPVOID arg)
#  define THREAD_RETURN return 0
static int thread_start(thread_t *t, LPTHREAD_START_ROUTINE fn, void *arg) {
  *t = CreateThread(NULL, 0, fn, arg, 0, NULL);
  return *t != NULL ? 0 : -1;
}
static void thread_join(thread_t t) {
  WaitForSingleObject(t, INFINITE);
  CloseHandle(t);
}
static void sleep_ms(unsigned ms) { Sleep(ms); }
#else
#  include <pthread.h>
#  include <time.h>
typedef pthread_t thread_t;
#  define THREAD_FN(name) static void *name(void *arg)
#  define THREAD_RETURN return NULL
static int thread_start(thread_t *t, void *(*fn)(void *), void *arg) {
  return pthread_create(t, NULL, fn, arg) == 0 ? 0 : -1;
}
static void thread_join(thread_t t) { pthread_join(t, NULL); }
static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}
#endif

#define MAX_ACTIVE 2     /* connections open at once; more are DEFERred */
#define REJECT_EVERY 3   /* every third new request is REJECTed */
#define MAX_CONNS 64     /* server connection slots */
#define NCLIENTS 5       /* selftest clients */
#define WATCHDOG_MS 20000 /* the whole selftest must be done by then */

/* One accepted connection: non-blocking, echoes until end of stream. */
struct conn {
  pier_socket *sock; /* NULL: the slot is free */
  unsigned port;     /* the caller's, for the messages */
  char buf[512];
  size_t len, off;   /* bytes in buf to echo, and how many are sent */
};

static struct server {
  pier_loop *loop;
  pier_socket *listener;
  int events;         /* 1: network events; 0: pier_poll */
  int selftest;       /* stop once NCLIENTS requests are decided and done */
  int deferred;       /* a request waits at the head: not watching */
  int done;           /* the selftest's requests are all served */
  int active;         /* open connections */
  unsigned requests;  /* new requests counted for REJECT_EVERY */
  int n_accept, n_reject, n_defer, n_closed;
  int failures;
  struct conn conns[MAX_CONNS];
} sv;

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

static void failed(const char *what, int rc) {
  fprintf(stderr, "accept: %s: %s\n", what, pier_strerror(rc));
  sv.failures++;
}

/* ------------------------------------------------------------------ */
/* the condition function                                              */
/* ------------------------------------------------------------------ */

/*
 * Runs inside pier_accept for each pending request, in queue order,
 * before the connection exists for us; it must decide at once without
 * blocking.
 */
static int condition(pier_accept_info *info, void *ctx) {
  struct server *s = ctx;
  unsigned port = port_of(info->caller);

  if (!is_loopback(info->caller)) {
    printf("condition: request from port %u -> REJECT (not loopback)\n", port);
    s->n_reject++;
    return PIER_CF_REJECT;
  }
  if (s->active >= MAX_ACTIVE) {
    /* Not counted: it will be presented again, first, when we ask. */
    printf("condition: request from port %u -> DEFER (%d open, the limit)\n",
           port, s->active);
    s->n_defer++;
    return PIER_CF_DEFER;
  }
  if (++s->requests % REJECT_EVERY == 0) {
    printf("condition: request from port %u -> REJECT (every %s request)\n",
           port, REJECT_EVERY == 3 ? "third" : "nth");
    s->n_reject++;
    return PIER_CF_REJECT;
  }
  s->n_accept++;
  printf("condition: request from port %u -> ACCEPT (%d open)\n", port,
         s->active + 1);
  return PIER_CF_ACCEPT;
}

/* ------------------------------------------------------------------ */
/* the server: the same code under either driver                       */
/* ------------------------------------------------------------------ */

static void on_conn_events(pier_socket *s, unsigned recorded);

/* The selftest is over once every request is decided and served. */
static void check_done(void) {
  if (!sv.selftest || sv.done || sv.n_accept + sv.n_reject < NCLIENTS ||
      sv.active > 0)
    return;
  sv.done = 1;
  if (sv.events) {
    /* The listener closes in main; drop the reference that kept the loop
       alive for the selected events, and let it end. */
    int rc = pier_loop_unref(sv.loop);
    if (rc != 0) failed("pier_loop_unref", rc);
  }
}

/*
 * Take the requests waiting, until PIER_EWOULDBLOCK (none left; under
 * --events this also re-enables ACCEPT) or PIER_ETRYAGAIN (deferred: wait
 * for a connection to close before asking again).
 */
static void accept_ready(void) {
  while (!sv.deferred && !sv.done) {
    pier_op op = {0};
    int rc = pier_accept(sv.listener, &op, condition, &sv, NULL);
    if (rc == PIER_EWOULDBLOCK) break;
    if (rc == PIER_ETRYAGAIN) {
      sv.deferred = 1;
      break;
    }
    if (rc != 0) {
      failed("pier_accept", rc);
      break;
    }
    struct conn *k = NULL;
    for (int i = 0; i < MAX_CONNS && k == NULL; i++)
      if (sv.conns[i].sock == NULL) k = &sv.conns[i];
    if (k == NULL) { /* cannot happen with MAX_ACTIVE < MAX_CONNS */
      pier_close(op.accepted, NULL);
      continue;
    }
    memset(k, 0, sizeof *k);
    k->sock = op.accepted;
    sv.active++;
    struct sockaddr_storage ss;
    size_t len = sizeof ss;
    if (pier_getpeername(k->sock, &ss, &len) == 0)
      k->port = port_of((struct sockaddr *)&ss);
    if (sv.events) {
      /* It took the listener's selection (ACCEPT); it wants its own.
         Events that already hold (data waiting) are recorded at once. */
      pier_socket_set_data(k->sock, k);
      rc = pier_event_select(k->sock,
                             PIER_EV_READ | PIER_EV_WRITE | PIER_EV_CLOSE,
                             on_conn_events);
      if (rc != 0) failed("pier_event_select", rc);
    }
    /* With pier_poll the next pier_poll watches it (main_poll). */
  }
  check_done();
}

static void conn_close(struct conn *k) {
  /* No event callback runs for it after pier_close. */
  int rc = pier_close(k->sock, NULL);
  if (rc != 0) failed("pier_close", rc);
  k->sock = NULL;
  sv.active--;
  sv.n_closed++;
  /* A slot is free: if a request was deferred, ask for it again now. */
  if (sv.deferred) {
    sv.deferred = 0;
    accept_ready();
  }
  check_done();
}

/*
 * Echo what there is to echo: send what is pending, then receive more,
 * until a call says PIER_EWOULDBLOCK.  Closes the connection at the end of
 * the stream or on an error.
 */
static void conn_pump(struct conn *k) {
  for (;;) {
    pier_op op = {0};
    int rc;
    if (k->off < k->len) {
      pier_buf b = pier_buf_init(k->buf + k->off, k->len - k->off);
      rc = pier_send(k->sock, &op, &b, 1, 0, NULL);
      if (rc == PIER_EWOULDBLOCK) return; /* writable again: POLLOUT/WRITE */
      if (rc != 0) {                      /* the caller went away */
        if (rc != PIER_ECONNRESET && rc != PIER_EPIPE) failed("pier_send", rc);
        conn_close(k);
        return;
      }
      k->off += op.bytes;
      continue;
    }
    pier_buf b = pier_buf_init(k->buf, sizeof k->buf);
    rc = pier_recv(k->sock, &op, &b, 1, 0, NULL);
    if (rc == PIER_EWOULDBLOCK) return; /* more data: POLLIN/READ */
    if (rc != 0 || op.bytes == 0) {     /* an error, or the end of stream */
      if (rc != 0 && rc != PIER_ECONNRESET) failed("pier_recv", rc);
      conn_close(k);
      return;
    }
    k->len = op.bytes;
    k->off = 0;
  }
}

/* ------------------------------------------------------------------ */
/* driver 1: pier_poll                                                 */
/* ------------------------------------------------------------------ */

static void main_poll(void) {
  pier_pollfd fds[1 + MAX_CONNS];
  struct conn *who[1 + MAX_CONNS];
  while (!sv.done) {
    size_t n = 0;
    /* The listener only while no request is deferred: a deferred request
       is still waiting, and the listener would report it at once. */
    if (!sv.deferred) {
      fds[n].socket = sv.listener;
      fds[n].events = PIER_POLLIN;
      who[n++] = NULL;
    }
    for (int i = 0; i < MAX_CONNS; i++) {
      struct conn *k = &sv.conns[i];
      if (k->sock == NULL) continue;
      fds[n].socket = k->sock;
      fds[n].events = k->off < k->len ? PIER_POLLOUT : PIER_POLLIN;
      who[n++] = k;
    }
    int ready = pier_poll(fds, n, 1000);
    if (ready < 0) {
      failed("pier_poll", ready);
      return;
    }
    for (size_t i = 0; ready > 0 && i < n; i++) {
      if (fds[i].revents == 0) continue;
      if (who[i] == NULL) accept_ready();
      /* (a slot closed and taken again meanwhile holds another socket) */
      else if (who[i]->sock == fds[i].socket) conn_pump(who[i]);
    }
  }
}

/* ------------------------------------------------------------------ */
/* driver 2: network events                                            */
/* ------------------------------------------------------------------ */

static void on_conn_events(pier_socket *s, unsigned recorded) {
  (void)recorded;
  struct conn *k = pier_socket_get_data(s);
  pier_net_events ev;
  int rc = pier_enum_network_events(s, &ev);
  if (rc != 0) {
    failed("pier_enum_network_events", rc);
    conn_close(k);
    return;
  }
  /* READ, WRITE, or CLOSE (after the data before it): pump; it reads the
     end of the stream and closes. */
  if (ev.events & (PIER_EV_READ | PIER_EV_WRITE | PIER_EV_CLOSE))
    conn_pump(k);
}

static void on_listener_events(pier_socket *s, unsigned recorded) {
  (void)recorded;
  pier_net_events ev;
  int rc = pier_enum_network_events(s, &ev);
  if (rc != 0) {
    failed("pier_enum_network_events", rc);
    return;
  }
  if (!(ev.events & PIER_EV_ACCEPT)) return;
  if (ev.errors[PIER_EV_ACCEPT_BIT] != 0)
    failed("ACCEPT", ev.errors[PIER_EV_ACCEPT_BIT]);
  /* While a request is deferred the event is ignored: conn_close asks. */
  accept_ready();
}

static int main_events(void) {
  int rc = pier_event_select(sv.listener, PIER_EV_ACCEPT, on_listener_events);
  if (rc != 0) return rc;
  /* Selected events do not keep a loop alive: this reference does
     (check_done drops it when the selftest is over). */
  if ((rc = pier_loop_ref(sv.loop)) != 0) return rc;
  rc = pier_loop_run(sv.loop, PIER_RUN_DEFAULT);
  return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------ */
/* the selftest's clients: overlapped, on a loop of their own          */
/* ------------------------------------------------------------------ */

/* A client: connect, send one message, check the echo. */
struct client {
  int id;
  pier_socket *sock;
  pier_op op;
  char msg[64], echo[64];
  size_t len;
  int done, echoed, refused, failed;
};

static struct client clients[NCLIENTS];

/* The client's outcome is known: record it and close its socket. */
static void client_done(struct client *c, int status, const char *what) {
  if (c->done) return;
  c->done = 1;
  if (status == 0 && strcmp(what, "echo") == 0) {
    printf("client %d: echo verified\n", c->id);
    c->echoed = 1;
    /* "No more from me": the server reads the end of the stream. */
    int rc = pier_shutdown(c->sock, PIER_SHUT_WR);
    if (rc != 0) fprintf(stderr, "client %d: pier_shutdown: %s\n", c->id,
                         pier_strerror(rc));
  } else if (status == PIER_ECONNRESET || status == PIER_ECONNREFUSED ||
             status == PIER_EREFUSED || status == PIER_ECONNABORTED ||
             (status == 0 && strcmp(what, "end of stream") == 0)) {
    /* A REJECTed request: where the OS completed the handshake before the
       condition function ran (POSIX, Wine), the client sees a reset or
       the end of the stream on its first receive; with
       SO_CONDITIONAL_ACCEPT on Windows the connect itself fails. */
    printf("client %d: refused (%s), as planned\n", c->id,
           status ? pier_strerror(status) : what);
    c->refused = 1;
  } else {
    fprintf(stderr, "client %d: %s: %s\n", c->id, what,
            status ? pier_strerror(status) : "unexpected");
    c->failed = 1;
  }
  int rc = pier_close(c->sock, NULL);
  if (rc != 0) fprintf(stderr, "client %d: pier_close: %s\n", c->id,
                       pier_strerror(rc));
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

/* The client thread: all NCLIENTS connect at once; the loop runs until
   every one has its outcome and its socket is closed. */
THREAD_FN(client_thread) {
  unsigned port = *(unsigned *)arg;
  struct sockaddr_in to = loopback(port);
  pier_loop *loop;
  int rc = pier_loop_new(NULL, &loop);
  if (rc != 0) {
    fprintf(stderr, "clients: pier_loop_new: %s\n", pier_strerror(rc));
    clients[0].failed = 1;
    THREAD_RETURN;
  }
  for (int i = 0; i < NCLIENTS; i++) {
    struct client *c = &clients[i];
    memset(c, 0, sizeof *c);
    c->id = i + 1;
    c->op.data = c;
    c->len = (size_t)snprintf(c->msg, sizeof c->msg, "hello from client %d",
                              c->id);
    rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &c->sock);
    if (rc == 0)
      rc = pier_connect(c->sock, &c->op, (struct sockaddr *)&to, sizeof to,
                        NULL, NULL, on_client_connected);
    if (rc != 0) {
      fprintf(stderr, "client %d: %s\n", c->id, pier_strerror(rc));
      c->failed = 1;
      if (c->sock != NULL) pier_close(c->sock, NULL);
      c->sock = NULL;
    }
  }
  rc = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (rc < 0) fprintf(stderr, "clients: pier_loop_run: %s\n", pier_strerror(rc));
  if ((rc = pier_loop_free(loop)) != 0)
    fprintf(stderr, "clients: pier_loop_free: %s\n", pier_strerror(rc));
  THREAD_RETURN;
}

/* A hung selftest fails instead of blocking CI. */
THREAD_FN(watchdog) {
  (void)arg;
  sleep_ms(WATCHDOG_MS);
  fprintf(stderr, "accept: selftest did not finish in %d ms\n", WATCHDOG_MS);
  exit(1);
  THREAD_RETURN;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* Serve on 127.0.0.1:port with one driver; returns 1 if all went well. */
static int serve(unsigned port, int events, int selftest) {
  const char *how = events ? "network events" : "pier_poll";
  memset(&sv, 0, sizeof sv);
  sv.events = events;
  sv.selftest = selftest;
  int rc = pier_loop_new(NULL, &sv.loop);
  if (rc != 0) {
    fprintf(stderr, "accept: pier_loop_new: %s\n", pier_strerror(rc));
    return 0;
  }
  struct sockaddr_in addr = loopback(port);
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  rc = pier_socket_open(sv.loop, pier_protocol_find("tcp4"), PIER_SOCK_NONBLOCK,
                        &sv.listener);
  if (rc == 0 && !selftest) rc = pier_setsockopt(sv.listener, PIER_SO_REUSEADDR, 1);
  if (rc == 0) rc = pier_bind(sv.listener, (struct sockaddr *)&addr, sizeof addr);
  if (rc == 0) rc = pier_listen(sv.listener, 0);
  if (rc == 0) rc = pier_getsockname(sv.listener, &ss, &len);
  if (rc != 0) {
    fprintf(stderr, "accept: listener: %s\n", pier_strerror(rc));
    if (sv.listener) pier_close(sv.listener, NULL);
    pier_loop_run(sv.loop, PIER_RUN_DEFAULT);
    pier_loop_free(sv.loop);
    return 0;
  }
  port = port_of((struct sockaddr *)&ss);
  printf("accept: pier %s on provider %s, %s, listening on 127.0.0.1:%u\n",
         pier_version_string(), pier_loop_backend(sv.loop), how, port);

  thread_t client;
  memset(&client, 0, sizeof client); /* (only used in the selftest) */
  if (selftest && thread_start(&client, client_thread, &port) != 0) {
    fprintf(stderr, "accept: cannot start a thread\n");
    return 0;
  }

  if (events) {
    if ((rc = main_events()) != 0) failed("network events", rc);
  } else {
    main_poll();
  }

  if (selftest) thread_join(client);
  /* Close what is left, then run the loop so the close callbacks run,
     and free it. */
  for (int i = 0; i < MAX_CONNS; i++)
    if (sv.conns[i].sock != NULL) pier_close(sv.conns[i].sock, NULL);
  if ((rc = pier_close(sv.listener, NULL)) != 0) failed("pier_close", rc);
  if ((rc = pier_loop_run(sv.loop, PIER_RUN_DEFAULT)) < 0)
    failed("pier_loop_run", rc);
  if ((rc = pier_loop_free(sv.loop)) != 0) failed("pier_loop_free", rc);
  if (!selftest) return sv.failures == 0;

  int echoes = 0, refused = 0, client_failures = 0;
  for (int i = 0; i < NCLIENTS; i++) {
    echoes += clients[i].echoed;
    refused += clients[i].refused;
    client_failures += clients[i].failed;
  }
  /* 5 requests: the 3rd one counted is rejected, the other 4 accepted; the
     limit of 2 open connections makes at least one request wait. */
  int ok = sv.failures == 0 && client_failures == 0 && sv.n_accept == 4 &&
           sv.n_reject == 1 && sv.n_defer >= 1 && sv.n_closed == 4 &&
           echoes == 4 && refused == 1;
  printf("accept: %s: %d accepted, %d rejected, %d deferred; %d echoes, %d "
         "refused: %s\n", how, sv.n_accept, sv.n_reject, sv.n_defer, echoes,
         refused, ok ? "ok" : "FAILED");
  return ok;
}

/* A usage error: name the argument and what is wrong; exit status 2. */
static void usage_error(const char *arg, const char *why) {
  fprintf(stderr, "accept: %s: %s (accept --help lists the options)\n", arg,
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
    fprintf(stderr, "accept: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: accept -p PORT [--events]\n"
    "       accept --selftest | --help\n"
    "Echo server on 127.0.0.1 with a non-blocking, conditional accept: "
    "ACCEPT,\n"
    "REJECT every third caller, DEFER beyond %d open connections.\n"
    "  -p PORT     listen on PORT, 0 to 65535 (0: any free port); required\n"
    "  --events    driven by network events (pier_event_select); default: "
    "pier_poll\n"
    "  --selftest  both ways, each with %d clients in this process\n"
    "  -h, --help  this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here).\n",
    MAX_ACTIVE, NCLIENTS);
}

int main(int argc, char **argv) {
  long port = -1;
  int selftest = 0, events = 0, ok;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(a, "--selftest") == 0) selftest = 1;
    else if (strcmp(a, "--events") == 0) events = 1;
    else if (strcmp(a, "-p") == 0)
      port = number(a, value(argc, argv, &i), 0, 65535);
    else usage_error(a, "unknown option");
  }
  if (!selftest && port < 0) usage_error("-p PORT", "required");
  setvbuf(stdout, NULL, _IOLBF, 0);

  if (selftest) {
    thread_t dog;
    if (thread_start(&dog, watchdog, NULL) != 0) {
      fprintf(stderr, "accept: cannot start a thread\n");
      return 1;
    }
    ok = serve(0, 0, 1);        /* pier_poll */
    if (ok) ok = serve(0, 1, 1); /* network events */
    printf("accept: selftest %s\n", ok ? "ok" : "FAILED");
  } else {
    ok = serve((unsigned)port, events, 0); /* until killed */
  }
  return ok ? 0 : 1;
}
