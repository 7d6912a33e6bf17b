/* SPDX-License-Identifier: MIT */
/*
 * examples/iocpserverex.c - the "iocpserverex" sample: the multi-threaded
 * echo server of iocpserver, with accepts posted ahead of time that take
 * the caller's first data with the connection, as AcceptEx does.
 *
 * What it shows (beyond iocpserver.c, which explains the threads and the
 * lock-free per-connection state)
 *   - Pre-posted accepts: PREPOSTED accept operations are kept outstanding
 *     on the listener all the time, each with the connection state (and
 *     buffer) it will use, and PIER_SO_PREPOSTED_ACCEPTS (set before the
 *     first accept) tells the provider how many accepts to keep posted in
 *     the kernel (AcceptEx on the iocp provider).  A burst of callers is
 *     taken without waiting for the application to ask again; each
 *     completion posts a fresh accept at once.
 *   - The first data with the accept: with PIER_SO_ACCEPT_FIRST set
 *     on the listener before pier_listen, accepts started with
 *     pier_accept_first complete only once the caller
 *     has sent its first bytes, and bring them along (op->bytes of them in
 *     the buffer given): the server echoes them straight away, saving a
 *     receive per connection.  Callers that stay silent for FIRST_MS are
 *     dropped by the provider.  A provider without the mechanism
 *     (libevent) refuses the option (PIER_ENOPROTOOPT) and its accepts
 *     simply complete with no data: the first receive then gets it.
 *   - PIER_SO_ZERO_READ on every accepted connection: a pending receive
 *     first waits with a zero-byte read, so thousands of idle connections
 *     keep no receive buffer locked in the kernel (iocp; accepted and read
 *     back, with nothing to tune, elsewhere).
 *
 * How to run it
 *   iocpserverex -p PORT [-a PREPOSTED] [-t THREADS]
 *       serve on 127.0.0.1:PORT until killed, with PREPOSTED accepts
 *       (default 16, 1..256) posted ahead and THREADS threads (default 4)
 *       serving the loop; drive it with
 *       iocpclient -h 127.0.0.1 -p PORT -n 20 -s 3
 *   iocpserverex --selftest
 *       the server with -a 8 plus NCLIENTS clients on the same loop, each
 *       sending first and checking every echoed byte; checks the number of
 *       pre-posted accepts and that the first data came with every accept
 *       where the provider takes it, and with none where it does not
 *   iocpserverex --help
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest (on libevent: "first data with the accept:
 * not on this provider" and 0 of 16):
 *   iocpserverex: pier 0.1.0 on provider iocp, 4 threads, listening on 127.0.0.1:45001
 *   iocpserverex: 8 accepts pre-posted, first data with the accept: on
 *   iocpserverex: 16 connections (16 with their first data), 16 closed, 3920244 bytes echoed
 *   iocpserverex: selftest ok (16 clients verified)
 * and exit status 0 (1 on any failure; 2 for a bad command line, with a
 * message naming the argument).
 *
 * Build in the tree (make examples/iocpserverex) or against an installed
 * pier:
 *   cc iocpserverex.c $(pkg-config --cflags --libs pier) -lpthread -o iocpserverex
 */
#include <pier.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------------------ */
/* one mutex, for the state shared between connections                */
/* ------------------------------------------------------------------ */
#ifdef _WIN32
#  include <windows.h>
typedef CRITICAL_SECTION lock_t;
static void lock_init(lock_t *l) { InitializeCriticalSection(l); }
static void lock(lock_t *l) { EnterCriticalSection(l); }
static void unlock(lock_t *l) { LeaveCriticalSection(l); }
#else
#  include <pthread.h>
typedef pthread_mutex_t lock_t;
static void lock_init(lock_t *l) { pthread_mutex_init(l, NULL); }
static void lock(lock_t *l) { pthread_mutex_lock(l); }
static void unlock(lock_t *l) { pthread_mutex_unlock(l); }
#endif

#define PREPOSTED 16      /* default -a */
#define MAX_PREPOSTED 256 /* PIER_SO_PREPOSTED_ACCEPTS' limit */
#define FIRST_MS 10000    /* a caller silent that long is dropped */
#define BUFSIZE 8192      /* >= 1024: room for the first data */
#define NCLIENTS 16       /* selftest connections */
#define SELFTEST_PREPOSTED 8
#define ROUNDS 30         /* selftest messages per connection */
#define DEADLINE_MS 20000

static pier_loop *loop;
static pier_socket *listener;
static int accept_first;  /* the provider takes the first data with accepts */
static pier_timer deadline;

/* Shared between connections, so behind the lock. */
static lock_t stats_lock;
static struct {
  unsigned long opened, with_data, closed, failures;
  unsigned long long bytes;
  int clients_done, clients_ok, closing;
} stats;

static void count_failure(const char *what, int rc) {
  fprintf(stderr, "iocpserverex: %s: %s\n", what, pier_strerror(rc));
  lock(&stats_lock);
  stats.failures++;
  unlock(&stats_lock);
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
 * Per connection, allocated when its accept is posted: the accept's first
 * data lands in buf.  Once accepted, only its own socket's callbacks touch
 * it - no lock.
 */
struct conn {
  pier_socket *sock;
  pier_op op;               /* accept, then recv, send, recv ... */
  char buf[BUFSIZE];
  unsigned long long bytes;
  int closing;
};

static void on_conn_closed(pier_socket *s) {
  struct conn *c = pier_socket_get_data(s);
  lock(&stats_lock);
  stats.closed++;
  stats.bytes += c->bytes;
  unlock(&stats_lock);
  free(c);
}

static void conn_close(struct conn *c) {
  if (c->closing) return;
  c->closing = 1;
  int rc = pier_close(c->sock, on_conn_closed);
  if (rc != 0) count_failure("pier_close", rc);
}

static void conn_recv(struct conn *c);

static void on_conn_sent(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status != 0) {
    if (status != PIER_ECANCELED && status != PIER_ECONNRESET)
      count_failure("send", status);
    conn_close(c);
    return;
  }
  c->bytes += op->bytes;
  conn_recv(c);
}

/* Echo the len bytes in c->buf, then receive again. */
static void conn_echo(struct conn *c, size_t len) {
  pier_buf b = pier_buf_init(c->buf, len);
  int rc = pier_send(c->sock, &c->op, &b, 1, 0, on_conn_sent);
  if (rc != 0) {
    count_failure("pier_send", rc);
    conn_close(c);
  }
}

static void on_conn_recv(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status != 0 || op->bytes == 0) { /* an error, or the end of stream */
    if (status != 0 && status != PIER_ECANCELED && status != PIER_ECONNRESET)
      count_failure("recv", status);
    conn_close(c);
    return;
  }
  conn_echo(c, op->bytes);
}

static void conn_recv(struct conn *c) {
  pier_buf b = pier_buf_init(c->buf, sizeof c->buf);
  int rc = pier_recv(c->sock, &c->op, &b, 1, 0, on_conn_recv);
  if (rc != 0) {
    count_failure("pier_recv", rc);
    conn_close(c);
  }
}

static void on_accept(pier_op *op, int status);

/* Post one accept, with the state of the connection it will bring. */
static int post_accept(void) {
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) return PIER_ENOMEM;
  c->op.data = c;
  int rc;
  /* The first data, where the provider takes it with the accept, lands
     in c->buf; elsewhere this is a plain accept. */
  rc = pier_accept_first(listener, &c->op, c->buf, sizeof c->buf, on_accept);
  if (rc != 0) free(c);
  return rc;
}

static void on_accept(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status == PIER_ECANCELED) { /* the listener is closing */
    free(c);
    return;
  }
  /* Replace this accept at once, so PREPOSTED stay outstanding. */
  lock(&stats_lock);
  int closing = stats.closing;
  unlock(&stats_lock);
  if (!closing) {
    int rc = post_accept();
    if (rc != 0) count_failure("posting an accept", rc);
  }
  if (status != 0) {
    count_failure("accept", status);
    free(c);
    return;
  }
  size_t first = op->bytes; /* the first data that came along, or 0 */
  c->sock = op->accepted;
  pier_socket_set_data(c->sock, c);
  /* Idle connections hold no kernel receive buffer (iocp). */
  int rc = pier_setsockopt(c->sock, PIER_SO_ZERO_READ, 1);
  if (rc != 0) count_failure("PIER_SO_ZERO_READ", rc);
  lock(&stats_lock);
  stats.opened++;
  if (first > 0) stats.with_data++;
  unlock(&stats_lock);
  /* The new socket's callbacks cannot run before this one returns. */
  if (first > 0) conn_echo(c, first); /* saved a receive */
  else conn_recv(c);
}

/* ------------------------------------------------------------------ */
/* the selftest's clients, on the same loop                            */
/* ------------------------------------------------------------------ */

/* A client: also touched only from its own socket's callbacks. */
struct client {
  int id, round;
  pier_socket *sock;
  pier_op op;
  size_t len;
  unsigned char out[BUFSIZE * 2], in[BUFSIZE * 2];
};

static struct client clients[NCLIENTS];

static void selftest_stop(void) {
  lock(&stats_lock);
  stats.closing = 1; /* on_accept posts no more */
  unlock(&stats_lock);
  int rc = pier_close(listener, NULL); /* its accepts: PIER_ECANCELED */
  if (rc != 0) count_failure("pier_close", rc);
  pier_timer_stop(&deadline);
}

static void client_end(struct client *k, int status, const char *what) {
  if (status != 0) {
    fprintf(stderr, "iocpserverex: client %d round %d: %s: %s\n", k->id,
            k->round, what, pier_strerror(status));
  }
  int rc = pier_close(k->sock, NULL);
  if (rc != 0) count_failure("pier_close", rc);
  lock(&stats_lock);
  int last = ++stats.clients_done == NCLIENTS;
  if (status == 0) stats.clients_ok++;
  else stats.failures++;
  unlock(&stats_lock);
  if (last) selftest_stop();
}

static void client_send(struct client *k);

static void on_client_echo(pier_op *op, int status) {
  struct client *k = op->data;
  if (status != 0) { client_end(k, status, "recv"); return; }
  if (op->bytes != k->len || memcmp(k->in, k->out, k->len) != 0) {
    client_end(k, PIER_EPROTO, "echo differs");
    return;
  }
  if (++k->round == ROUNDS) {
    /* Half-close first: the server sees the end of stream and closes. */
    int rc = pier_shutdown(k->sock, PIER_SHUT_WR);
    client_end(k, rc, "pier_shutdown");
    return;
  }
  client_send(k);
}

static void on_client_sent(pier_op *op, int status) {
  struct client *k = op->data;
  if (status != 0) { client_end(k, status, "send"); return; }
  pier_buf b = pier_buf_init(k->in, k->len);
  int rc = pier_recv(k->sock, &k->op, &b, 1, PIER_MSG_WAITALL, on_client_echo);
  if (rc != 0) client_end(k, rc, "pier_recv");
}

/* One message: a length that varies by client and round, a pattern. */
static void client_send(struct client *k) {
  k->len = 1 + (size_t)(k->id * 997 + k->round * 1231) % (sizeof k->out - 1);
  for (size_t i = 0; i < k->len; i++)
    k->out[i] = (unsigned char)(i * 31 + (size_t)k->id * 7 + (size_t)k->round);
  pier_buf b = pier_buf_init(k->out, k->len);
  int rc = pier_send(k->sock, &k->op, &b, 1, 0, on_client_sent);
  if (rc != 0) client_end(k, rc, "pier_send");
}

static void on_client_connected(pier_op *op, int status) {
  struct client *k = op->data;
  if (status != 0) { client_end(k, status, "connect"); return; }
  client_send(k);
}

static void on_deadline(pier_timer *t) {
  (void)t;
  fprintf(stderr, "iocpserverex: selftest did not finish in %d ms\n",
          DEADLINE_MS);
  lock(&stats_lock);
  stats.failures++;
  unlock(&stats_lock);
  pier_loop_stop(loop); /* ends every thread's run */
}

static int start_clients(unsigned port) {
  struct sockaddr_in to = loopback(port);
  for (int i = 0; i < NCLIENTS; i++) {
    struct client *k = &clients[i];
    k->id = i + 1;
    k->op.data = k;
    int rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &k->sock);
    if (rc == 0)
      rc = pier_connect(k->sock, &k->op, (struct sockaddr *)&to, sizeof to,
                        NULL, NULL, on_client_connected);
    if (rc != 0) {
      fprintf(stderr, "iocpserverex: client %d: %s\n", k->id, pier_strerror(rc));
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
  fprintf(stderr, "iocpserverex: %s: %s (iocpserverex --help lists the options)\n", arg,
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
    fprintf(stderr, "iocpserverex: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: iocpserverex -p PORT [-a PREPOSTED] [-t THREADS]\n"
    "       iocpserverex --selftest | --help\n"
    "Echo server on 127.0.0.1 keeping accepts posted ahead, which take the "
    "caller's\n"
    "first data along where the provider can; until killed.  Drive it "
    "with\n"
    "iocpclient.\n"
    "  -p PORT       listen on PORT, 0 to 65535 (0: any free port); "
    "required\n"
    "  -a PREPOSTED  accepts kept posted, 1 to %d; default %d\n"
    "  -t THREADS    threads serving the loop, 1 to %d; default 4\n"
    "  --selftest    -a %d and %d clients on the same loop, every echo "
    "checked\n"
    "  -h, --help    this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here).\n",
    MAX_PREPOSTED, PREPOSTED, PIER_LOOP_MAX_THREADS, SELFTEST_PREPOSTED,
    NCLIENTS);
}

int main(int argc, char **argv) {
  long port_arg = -1; /* none given */
  int selftest = 0, threads = 4, preposted = PREPOSTED, rc;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(a, "--selftest") == 0) selftest = 1;
    else if (strcmp(a, "-p") == 0)
      port_arg = number(a, value(argc, argv, &i), 0, 65535);
    else if (strcmp(a, "-a") == 0)
      preposted = (int)number(a, value(argc, argv, &i), 1, MAX_PREPOSTED);
    else if (strcmp(a, "-t") == 0)
      threads = (int)number(a, value(argc, argv, &i), 1, PIER_LOOP_MAX_THREADS);
    else usage_error(a, "unknown option");
  }
  if (!selftest && port_arg < 0) usage_error("-p PORT", "required");
  unsigned port = selftest ? 0 : (unsigned)port_arg;
  if (selftest) preposted = SELFTEST_PREPOSTED;
  setvbuf(stdout, NULL, _IOLBF, 0);
  lock_init(&stats_lock);

  /* The loop and its thread pool. */
  pier_loop_options opts = {sizeof opts, NULL, 0, (unsigned)threads};
  if ((rc = pier_loop_new(&opts, &loop)) != 0) {
    fprintf(stderr, "iocpserverex: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  struct sockaddr_in addr = loopback(port);
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &listener);
  if (rc == 0 && !selftest) rc = pier_setsockopt(listener, PIER_SO_REUSEADDR, 1);
  if (rc == 0) rc = pier_bind(listener, (struct sockaddr *)&addr, sizeof addr);
  /* Before pier_listen: accepts wait for the caller's first data and
     bring it along, where the provider can (else PIER_ENOPROTOOPT). */
  if (rc == 0) {
    int frc = pier_setsockopt(listener, PIER_SO_ACCEPT_FIRST, FIRST_MS);
    if (frc == 0) accept_first = 1;
    else if (frc != PIER_ENOPROTOOPT) rc = frc;
  }
  if (rc == 0) rc = pier_listen(listener, 0);
  if (rc == 0) rc = pier_getsockname(listener, &ss, &len);
  /* Before the first accept: how many the provider keeps posted. */
  if (rc == 0) rc = pier_setsockopt(listener, PIER_SO_PREPOSTED_ACCEPTS, preposted);
  int posted = 0;
  if (rc == 0) rc = pier_getsockopt(listener, PIER_SO_PREPOSTED_ACCEPTS, &posted);
  if (rc != 0) {
    fprintf(stderr, "iocpserverex: listener: %s\n", pier_strerror(rc));
    return 1;
  }
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  printf("iocpserverex: pier %s on provider %s, %d threads, listening on "
         "127.0.0.1:%u\n", pier_version_string(), pier_loop_backend(loop),
         threads, port);
  printf("iocpserverex: %d accepts pre-posted, first data with the accept: "
         "%s\n", posted, accept_first ? "on" : "not on this provider");

  /* The application's side of pre-posting: preposted accepts outstanding,
     each replaced as it completes (on_accept). */
  for (int i = 0; i < preposted && rc == 0; i++) rc = post_accept();
  if (rc != 0) {
    fprintf(stderr, "iocpserverex: posting accepts: %s\n", pier_strerror(rc));
    return 1;
  }
  if (selftest) {
    if ((rc = pier_timer_init(loop, &deadline)) == 0)
      rc = pier_timer_start(&deadline, DEADLINE_MS, 0, on_deadline);
    if (rc == 0) rc = start_clients(port);
    if (rc != 0) {
      fprintf(stderr, "iocpserverex: selftest setup: %s\n", pier_strerror(rc));
      return 1;
    }
  }

  /* This thread and threads - 1 more serve the loop until nothing is left
     (or pier_loop_stop); pier joins its threads before returning. */
  rc = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (rc < 0) count_failure("pier_loop_run", rc);
  if ((rc = pier_loop_free(loop)) != 0) count_failure("pier_loop_free", rc);

  printf("iocpserverex: %lu connections (%lu with their first data), %lu "
         "closed, %llu bytes echoed\n", stats.opened, stats.with_data,
         stats.closed, stats.bytes);
  int ok = stats.failures == 0;
  if (selftest) {
    /* Every client sends first: with accept-first each accept brings
       data; without, none does. */
    unsigned long want_data = accept_first ? NCLIENTS : 0;
    if (posted != SELFTEST_PREPOSTED || stats.with_data != want_data) {
      fprintf(stderr, "iocpserverex: %d accepts pre-posted (want %d), %lu "
              "with data (want %lu)\n", posted, SELFTEST_PREPOSTED,
              stats.with_data, want_data);
      ok = 0;
    }
    ok = ok && stats.clients_ok == NCLIENTS && stats.opened == NCLIENTS &&
         stats.closed == NCLIENTS;
    printf("iocpserverex: selftest %s (%d clients verified)\n",
           ok ? "ok" : "FAILED", stats.clients_ok);
  }
  return ok ? 0 : 1;
}
