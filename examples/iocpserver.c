/* SPDX-License-Identifier: MIT */
/*
 * examples/iocpserver.c - the "iocpserver" sample: an echo server on one
 * loop served by several threads, the way an I/O completion port is served
 * by a pool of worker threads.
 *
 * What it shows
 *   - pier_loop_options.threads = N: pier_loop_run() starts N - 1 threads
 *     that serve the loop with the calling one; completions run on any of
 *     them.
 *   - Per-connection state without locks: the callbacks of one socket
 *     never run at the same time and run in order per direction, so a
 *     struct conn touched only from its own socket's callbacks needs no
 *     mutex.  An accepted socket's first callbacks wait until the accept
 *     callback that handed it over has returned, so that callback may set
 *     it up in any order.
 *   - State shared between connections (the statistics) is the
 *     application's to lock: one mutex here.
 *   - A condition function that rejects callers in the --deny ranges
 *     (CIDR, IPv4 or IPv6, parsed with a numeric pier_resolve), and
 *     NACCEPTS accepts kept posted so bursts of connections are taken fast.
 *   - Stopping cleanly on Ctrl-C / SIGINT / SIGTERM.  A signal handler may
 *     call next to nothing - no pier call, they take locks - so on POSIX it
 *     only writes a byte to a socketpair whose other end is a pier socket
 *     with a receive pending; on Windows the console control handler runs
 *     on a thread of its own, where pier_loop_post is allowed.  Either way
 *     the stop runs on the loop, like any completion: close the listener
 *     and every open connection (kept in a list for that), let the loop run
 *     out, free it and print the statistics.  A second signal kills.
 *
 * How to run it
 *   iocpserver [-p PORT] [-t THREADS] [--deny CIDR]...
 *                                       serve on 127.0.0.1:PORT (default
 *                                       5004; 0: any free port) with
 *                                       THREADS (4) threads until stopped,
 *                                       refusing callers in each CIDR (e.g.
 *                                       127.0.0.2/32, ::1/128); drive it
 *                                       with examples/iocpclient
 *   iocpserver -p port --accept-close   accept each caller through the
 *                                       condition function, then close it
 *                                       at once (for bench/run's accepts
 *                                       per second); no echo
 *   iocpserver --selftest               the server plus NCLIENTS clients on
 *                                       the same loop, each exchanging
 *                                       ROUNDS messages and checking every
 *                                       echoed byte, and one more client
 *                                       from 127.0.0.2, denied by
 *                                       --deny 127.0.0.2/32
 *   iocpserver --help                   the options, their ranges and
 *                                       defaults
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest:
 *   iocpserver: pier 0.1.0 on provider libevent, 4 threads, listening on 127.0.0.1:45001
 *   iocpserver: condition: caller denied (127.0.0.2/32)
 *   iocpserver: 16 connections accepted, 1 refused, 16 closed; 3920244 bytes in, 3920244 bytes out; 0 errors
 *   iocpserver: selftest ok (16 clients verified, 1 denied)
 * and exit status 0 (1 on any failure; 2 for a bad command line).  Stopped
 * by a signal it prints, after "iocpserver: SIGINT: stopping", the same
 * statistics line.
 *
 * Build in the tree (make examples/iocpserver) or against an installed pier:
 *   cc iocpserver.c $(pkg-config --cflags --libs pier) -lpthread -o iocpserver
 */
/* sigaction and socketpair are POSIX: ask for them even under a strict
   -std=c99. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200112L
#endif
#include <pier.h>

#include <errno.h>
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
#  include <fcntl.h>
#  include <pthread.h>
#  include <signal.h>
#  include <sys/socket.h>
#  include <unistd.h>
typedef pthread_mutex_t lock_t;
static void lock_init(lock_t *l) { pthread_mutex_init(l, NULL); }
static void lock(lock_t *l) { pthread_mutex_lock(l); }
static void unlock(lock_t *l) { pthread_mutex_unlock(l); }
#endif

#define DEFAULT_PORT 5004
#define DEFAULT_THREADS 4
#define NACCEPTS 4        /* accepts kept posted on the listener */
#define BUFSIZE 8192
#define NCLIENTS 16       /* selftest connections */
#define ROUNDS 30         /* selftest messages per connection */
#define DEADLINE_MS 20000

static pier_loop *loop;
static pier_socket *listener;
static pier_op accept_ops[NACCEPTS];
static pier_timer deadline;
static int accept_close; /* --accept-close: close each accepted caller */

/* --deny ranges: an address and a prefix length, per family. */
#define MAX_DENY 8
static struct deny {
  int family;
  unsigned char addr[16];
  unsigned bits;
  char text[64];
} denies[MAX_DENY];
static int ndenies;

struct conn;

/* Shared between connections, so behind the lock. */
static lock_t stats_lock;
static struct {
  unsigned long opened, closed, failures;
  unsigned long long bytes_in, bytes_out;
  int clients_done, clients_ok;
  int stopping;                 /* stop_serving() has begun */
  int denied, denied_client_ok; /* condition REJECTs; the selftest's check */
  struct conn *open;            /* connections not closing yet, listed */
} stats;

static void count_failure(const char *what, int rc) {
  fprintf(stderr, "iocpserver: %s: %s\n", what, pier_strerror(rc));
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

/* Per connection: only its own socket's callbacks touch it - no lock -
   but for closing and the list of open connections (prev, next), which
   stop_serving() walks from another thread: those are behind the lock. */
struct conn {
  pier_socket *sock;
  pier_op op;               /* recv, then send, then recv ... */
  char buf[BUFSIZE];
  unsigned long long bytes_in, bytes_out;
  int closing;
  struct conn *prev, *next; /* in stats.open while not closing */
};

static void on_conn_closed(pier_socket *s) {
  struct conn *c = pier_socket_get_data(s);
  lock(&stats_lock);
  stats.closed++;
  stats.bytes_in += c->bytes_in;
  stats.bytes_out += c->bytes_out;
  unlock(&stats_lock);
  free(c);
}

/* Take c - or with c NULL the first open connection - off the list and
   mark it closing; the caller then closes it.  NULL if it is closing
   already (or none is open): exactly one caller closes each connection. */
static struct conn *conn_take(struct conn *c) {
  lock(&stats_lock);
  if (c == NULL) c = stats.open;
  if (c != NULL && c->closing) c = NULL;
  if (c != NULL) {
    c->closing = 1;
    if (c->prev != NULL) c->prev->next = c->next;
    else if (stats.open == c) stats.open = c->next;
    if (c->next != NULL) c->next->prev = c->prev;
  }
  unlock(&stats_lock);
  return c;
}

/* The end of c, after what failed with status (0: the end of the stream,
   or the stop): report a real error, close c.  Nothing when c is closing
   already - then a call on it failing is expected, not an error. */
static void conn_end(struct conn *c, const char *what, int status) {
  if (conn_take(c) == NULL) return;
  if (status != 0 && status != PIER_ECANCELED && status != PIER_ECONNRESET)
    count_failure(what, status);
  int rc = pier_close(c->sock, on_conn_closed);
  if (rc != 0) count_failure("pier_close", rc);
}

static void conn_recv(struct conn *c);

static void on_conn_sent(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status != 0) {
    conn_end(c, "send", status);
    return;
  }
  c->bytes_out += op->bytes;
  conn_recv(c);
}

static void on_conn_recv(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status != 0 || op->bytes == 0) { /* an error, or the end of stream */
    conn_end(c, "recv", status);
    return;
  }
  c->bytes_in += op->bytes;
  pier_buf b = pier_buf_init(c->buf, op->bytes);
  int rc = pier_send(c->sock, &c->op, &b, 1, 0, on_conn_sent);
  if (rc != 0) conn_end(c, "pier_send", rc);
}

static void conn_recv(struct conn *c) {
  pier_buf b = pier_buf_init(c->buf, sizeof c->buf);
  int rc = pier_recv(c->sock, &c->op, &b, 1, 0, on_conn_recv);
  if (rc != 0) conn_end(c, "pier_recv", rc);
}

/* The address bytes of an IPv4 or IPv6 socket address; their count. */
static size_t addr_bytes(const struct sockaddr *a, const unsigned char **p) {
  if (a->sa_family == AF_INET) {
    *p = (const unsigned char *)&((const struct sockaddr_in *)a)->sin_addr;
    return 4;
  }
  if (a->sa_family == AF_INET6) {
    *p = (const unsigned char *)&((const struct sockaddr_in6 *)a)->sin6_addr;
    return 16;
  }
  return 0;
}

/* Is the caller inside d?  The first d->bits bits must match. */
static int in_range(const struct deny *d, const struct sockaddr *a) {
  const unsigned char *p;
  size_t n = addr_bytes(a, &p);
  if (a->sa_family != d->family || n == 0) return 0;
  unsigned bits = d->bits, i = 0;
  for (; bits >= 8; bits -= 8, i++)
    if (p[i] != d->addr[i]) return 0;
  unsigned char mask = (unsigned char)(0xFF00u >> bits);
  return bits == 0 || (p[i] & mask) == (d->addr[i] & mask);
}

/* Parse "address[/bits]" with a numeric pier_resolve (blocking form);
   bits is a whole number up to the address's length (32 or 128). */
static int add_deny(const char *cidr) {
  struct deny *d = &denies[ndenies];
  char host[64];
  const char *slash = strchr(cidr, '/');
  size_t hl = slash ? (size_t)(slash - cidr) : strlen(cidr);
  if (ndenies == MAX_DENY || hl == 0 || hl >= sizeof host) return PIER_EINVAL;
  memcpy(host, cidr, hl);
  host[hl] = '\0';
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_flags = AI_NUMERICHOST;
  pier_op op;
  pier_op_init(&op);
  int rc = pier_resolve(loop, &op, host, NULL, &hints, NULL);
  if (rc != 0) return rc;
  const unsigned char *p = NULL;
  size_t n = addr_bytes(op.addrinfo->ai_addr, &p);
  d->family = op.addrinfo->ai_addr->sa_family;
  if (n != 0) memcpy(d->addr, p, n);
  pier_freeaddrinfo(op.addrinfo);
  char *end = NULL;
  long bits = slash ? strtol(slash + 1, &end, 10) : (long)(n * 8);
  int digits = !slash || (slash[1] >= '0' && slash[1] <= '9' && *end == '\0');
  if (n == 0 || !digits || bits > (long)(n * 8)) return PIER_EINVAL;
  d->bits = (unsigned)bits;
  snprintf(d->text, sizeof d->text, "%s", cidr);
  ndenies++;
  return 0;
}

/* REJECT callers inside a --deny range; ACCEPT the others.  It runs on
   whichever thread polls, with nothing of the connection set up yet. */
static int deny_listed(pier_accept_info *info, void *ctx) {
  (void)ctx;
  for (int i = 0; i < ndenies; i++) {
    if (in_range(&denies[i], info->caller)) {
      printf("iocpserver: condition: caller denied (%s)\n", denies[i].text);
      lock(&stats_lock);
      stats.denied++;
      unlock(&stats_lock);
      return PIER_CF_REJECT;
    }
  }
  return PIER_CF_ACCEPT;
}

static int stopping(void) {
  lock(&stats_lock);
  int stop = stats.stopping;
  unlock(&stats_lock);
  return stop;
}

static void on_accept(pier_op *op, int status);

static void post_accept(pier_op *op) {
  int rc = pier_accept(listener, op, deny_listed, NULL, on_accept);
  /* Once the stop has begun, the listener may be closing: expected. */
  if (rc != 0 && !stopping()) count_failure("pier_accept", rc);
}

/* An accepted connection: echo on it, listed so that a stop closes it.
   Its callbacks (on_conn_closed too) cannot run before on_accept has
   returned, so c stays valid here whatever another thread does. */
static void conn_start(pier_socket *s) {
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    count_failure("accept", PIER_ENOMEM);
    pier_close(s, NULL);
    return;
  }
  c->sock = s;
  c->op.data = c;
  pier_socket_set_data(s, c);
  conn_recv(c);
  lock(&stats_lock);
  stats.opened++;
  int stop = stats.stopping;
  if (!c->closing) { /* pier_recv may have failed: then it is closing */
    c->next = stats.open;
    if (c->next != NULL) c->next->prev = c;
    stats.open = c;
  }
  unlock(&stats_lock);
  if (stop) conn_end(c, NULL, 0); /* the stop may have walked the list */
}

static void on_accept(pier_op *op, int status) {
  if (status == PIER_ECANCELED) return; /* the listener is closing */
  if (status != 0) {
    count_failure("accept", status);
  } else if (accept_close) { /* admitted by the condition function; done */
    int rc = pier_close(op->accepted, NULL);
    if (rc != 0) count_failure("pier_close", rc);
    lock(&stats_lock);
    stats.opened++;
    stats.closed++;
    unlock(&stats_lock);
  } else {
    conn_start(op->accepted);
  }
  post_accept(op); /* keep NACCEPTS posted */
}

/* ------------------------------------------------------------------ */
/* stopping: on a signal, or when the selftest is done                 */
/* ------------------------------------------------------------------ */

static void signals_unwatch(void);

/* On a loop thread: no more accepts, every open connection closed; then
   the loop has nothing left and every thread's pier_loop_run returns. */
static void stop_serving(void) {
  lock(&stats_lock);
  int first = !stats.stopping;
  stats.stopping = 1;
  unlock(&stats_lock);
  if (!first) return;
  int rc = pier_close(listener, NULL); /* its accepts: PIER_ECANCELED */
  if (rc != 0) count_failure("pier_close", rc);
  signals_unwatch();
  pier_timer_stop(&deadline); /* the selftest's (PIER_EINVAL if unused) */
  struct conn *c;
  while ((c = conn_take(NULL)) != NULL) {
    rc = pier_close(c->sock, on_conn_closed);
    if (rc != 0) count_failure("pier_close", rc);
  }
}

#ifdef _WIN32
/* Windows: the console control handler runs on a thread of its own,
   where pier_loop_post may be called; the stop then runs on the loop. */
static pier_op ctrl_op;

static void on_ctrl_posted(pier_op *op, int status) {
  (void)op;
  (void)status;
  printf("iocpserver: Ctrl-C: stopping\n");
  stop_serving();
}

static BOOL WINAPI on_ctrl(DWORD event) {
  if (event != CTRL_C_EVENT && event != CTRL_BREAK_EVENT) return FALSE;
  return pier_loop_post(loop, &ctrl_op, on_ctrl_posted) == 0;
}

static int signals_watch(void) {
  if (SetConsoleCtrlHandler(on_ctrl, TRUE)) return 0;
  fprintf(stderr, "iocpserver: SetConsoleCtrlHandler: error %lu\n",
          (unsigned long)GetLastError());
  return -1;
}

/* From now on Ctrl-C has its default effect: it ends the process. */
static void signals_unwatch(void) { SetConsoleCtrlHandler(on_ctrl, FALSE); }
#else
/* POSIX: a signal handler may call no pier function (they take locks).
   It writes the signal's number to one end of a socketpair; the other
   end is a pier socket with a receive pending, completed on the loop. */
static int signal_fd = -1;       /* the handler's end */
static pier_socket *signal_sock; /* the loop's end */
static pier_op signal_op;
static unsigned char signal_number;

static void on_signal(int sig) {
  int saved = errno;            /* write() may change it */
  unsigned char b = (unsigned char)sig;
  ssize_t n = write(signal_fd, &b, 1); /* async-signal-safe */
  (void)n;
  errno = saved;
}

static void on_signal_byte(pier_op *op, int status) {
  if (status != 0 || op->bytes == 0) return; /* closed by the stop */
  printf("iocpserver: %s: stopping\n",
         signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  stop_serving();
}

static int signals_watch(void) {
  int sv[2], rc;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    fprintf(stderr, "iocpserver: socketpair: %s\n", strerror(errno));
    return -1;
  }
  fcntl(sv[1], F_SETFL, O_NONBLOCK); /* the handler must never block */
  if ((rc = pier_socket_adopt(loop, sv[0], 0, &signal_sock)) != 0) {
    close(sv[0]);
    close(sv[1]);
  } else {
    signal_fd = sv[1];
    pier_buf b = pier_buf_init(&signal_number, 1);
    rc = pier_recv(signal_sock, &signal_op, &b, 1, 0, on_signal_byte);
  }
  if (rc != 0) {
    fprintf(stderr, "iocpserver: signals: %s\n", pier_strerror(rc));
    return -1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  return 0;
}

/* From now on the signals have their default effect: they end the
   process.  The socketpair is closed (its pending receive: canceled). */
static void signals_unwatch(void) {
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  pier_close(signal_sock, NULL);
  close(signal_fd);
}
#endif

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

static void client_end(struct client *k, int status, const char *what) {
  if (status != 0) {
    fprintf(stderr, "iocpserver: client %d round %d: %s: %s\n", k->id,
            k->round, what, pier_strerror(status));
  }
  int rc = pier_close(k->sock, NULL);
  if (rc != 0) count_failure("pier_close", rc);
  lock(&stats_lock);
  int last = ++stats.clients_done == NCLIENTS;
  if (status == 0) stats.clients_ok++;
  else stats.failures++;
  unlock(&stats_lock);
  if (last) stop_serving();
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
  fprintf(stderr, "iocpserver: selftest did not finish in %d ms\n",
          DEADLINE_MS);
  lock(&stats_lock);
  stats.failures++;
  unlock(&stats_lock);
  pier_loop_stop(loop); /* ends every thread's run */
}

/* The selftest's caller from 127.0.0.2: refused at connect (Windows'
   conditional accept) or reset right after it; never served. */
static struct client denied_client;

static void denied_done(pier_op *op, int status) {
  int refused = status != 0 || op->bytes == 0;
  if (!refused) fprintf(stderr, "iocpserver: the denied caller was served\n");
  lock(&stats_lock);
  stats.denied_client_ok = refused;
  unlock(&stats_lock);
  pier_close(denied_client.sock, NULL);
}

static void denied_connected(pier_op *op, int status) {
  if (status != 0) { denied_done(op, status); return; }
  pier_buf b = pier_buf_init(denied_client.in, sizeof denied_client.in);
  int rc = pier_recv(denied_client.sock, op, &b, 1, 0, denied_done);
  if (rc != 0) denied_done(op, rc);
}

static int start_denied(unsigned port) {
  struct sockaddr_in to = loopback(port), from = loopback(0);
  from.sin_addr.s_addr = htonl(0x7F000002); /* 127.0.0.2 */
  denied_client.op.data = &denied_client;
  int rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0,
                            &denied_client.sock);
  if (rc == 0)
    rc = pier_bind(denied_client.sock, (struct sockaddr *)&from, sizeof from);
  if (rc == 0)
    rc = pier_connect(denied_client.sock, &denied_client.op,
                      (struct sockaddr *)&to, sizeof to, NULL, NULL,
                      denied_connected);
  return rc;
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
      fprintf(stderr, "iocpserver: client %d: %s\n", k->id, pier_strerror(rc));
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
  fprintf(stderr, "iocpserver: %s: %s (iocpserver --help lists the options)\n", arg,
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
    fprintf(stderr, "iocpserver: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: iocpserver [-p PORT] [-t THREADS] [--deny CIDR]... "
    "[--accept-close]\n"
    "       iocpserver --selftest | --help\n"
    "Echo server on 127.0.0.1 on one loop served by THREADS threads, until "
    "Ctrl-C,\n"
    "SIGINT or SIGTERM; then it prints its statistics.  Drive it with "
    "iocpclient.\n"
    "  -p PORT         listen on PORT, 0 to 65535 (0: any free port); "
    "default %d\n"
    "  -t THREADS      threads serving the loop, 1 to %d; default %d\n"
    "  --deny CIDR     refuse callers in ADDRESS[/BITS], IPv4 or IPv6 "
    "(e.g.\n"
    "                  127.0.0.2/32, ::1/128), up to %d times; default: "
    "none\n"
    "  --accept-close  close each caller once accepted, no echo (accepts "
    "per second\n"
    "                  for bench/run); default: echo\n"
    "  --selftest      the server, %d clients and one denied caller in this "
    "process\n"
    "  -h, --help      this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here).\n",
    DEFAULT_PORT, PIER_LOOP_MAX_THREADS, DEFAULT_THREADS, MAX_DENY,
    NCLIENTS);
}

int main(int argc, char **argv) {
  unsigned port = DEFAULT_PORT;
  int selftest = 0, threads = DEFAULT_THREADS, rc;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(a, "--selftest") == 0) selftest = 1;
    else if (strcmp(a, "-p") == 0)
      port = (unsigned)number(a, value(argc, argv, &i), 0, 65535);
    else if (strcmp(a, "-t") == 0)
      threads = (int)number(a, value(argc, argv, &i), 1, PIER_LOOP_MAX_THREADS);
    else if (strcmp(a, "--accept-close") == 0) accept_close = 1;
    else if (strcmp(a, "--deny") == 0) value(argc, argv, &i); /* below */
    else usage_error(a, "unknown option");
  }
  if (selftest) port = 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  lock_init(&stats_lock);

  /* The loop and its thread pool. */
  pier_loop_options opts = {sizeof opts, NULL, 0, (unsigned)threads};
  if ((rc = pier_loop_new(&opts, &loop)) != 0) {
    fprintf(stderr, "iocpserver: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  /* The --deny ranges, parsed now that there is a loop to resolve on. */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--deny") != 0) continue;
    if (add_deny(argv[++i]) != 0) {
      fprintf(stderr, "iocpserver: --deny %s: expected a numeric IPv4 or "
              "IPv6 address, then /BITS up to 32 or 128, at most %d times\n",
              argv[i], MAX_DENY);
      return 2;
    }
  }
  if (selftest && (rc = add_deny("127.0.0.2/32")) != 0) {
    fprintf(stderr, "iocpserver: selftest deny: %s\n", pier_strerror(rc));
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
    fprintf(stderr, "iocpserver: listener: %s\n", pier_strerror(rc));
    return 1;
  }
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  printf("iocpserver: pier %s on provider %s, %d threads, listening on "
         "127.0.0.1:%u\n", pier_version_string(), pier_loop_backend(loop),
         threads, port);

  if (signals_watch() != 0) return 1;
  for (int i = 0; i < NACCEPTS; i++) post_accept(&accept_ops[i]);
  if (selftest) {
    if ((rc = pier_timer_init(loop, &deadline)) == 0)
      rc = pier_timer_start(&deadline, DEADLINE_MS, 0, on_deadline);
    if (rc == 0) rc = start_denied(port);
    if (rc == 0) rc = start_clients(port);
    if (rc != 0) {
      fprintf(stderr, "iocpserver: selftest setup: %s\n", pier_strerror(rc));
      return 1;
    }
  }

  /* This thread and threads - 1 more serve the loop until nothing is left
     (after stop_serving) or pier_loop_stop; pier joins its threads before
     returning. */
  rc = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (rc < 0) count_failure("pier_loop_run", rc);
  if ((rc = pier_loop_free(loop)) != 0) count_failure("pier_loop_free", rc);

  printf("iocpserver: %lu connections accepted, %d refused, %lu closed; "
         "%llu bytes in, %llu bytes out; %lu errors\n", stats.opened,
         stats.denied, stats.closed, stats.bytes_in, stats.bytes_out,
         stats.failures);
  int ok = stats.failures == 0;
  if (selftest) {
    ok = ok && stats.clients_ok == NCLIENTS && stats.opened == NCLIENTS &&
         stats.closed == NCLIENTS && stats.denied >= 1 &&
         stats.denied_client_ok;
    printf("iocpserver: selftest %s (%d clients verified, %d denied)\n",
           ok ? "ok" : "FAILED", stats.clients_ok, stats.denied);
  }
  return ok ? 0 : 1;
}
