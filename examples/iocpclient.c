/* SPDX-License-Identifier: MIT */
/*
 * examples/iocpclient.c - the "iocpclient" sample: a multi-threaded stress
 * client that keeps many echo connections busy for a while, verifies every
 * echoed byte and reports its throughput live.
 *
 * What it shows
 *   - pier_resolve: the host name (or numeric address) is resolved on a
 *     worker thread while the loop runs; each connection walks the list of
 *     addresses until one connects (so "localhost" works whether it names
 *     ::1, 127.0.0.1 or both).
 *   - One loop served by several threads (pier_loop_options.threads) driving
 *     many connections, as an I/O completion port is: each connection's
 *     state is touched only from its own socket's callbacks, which pier runs
 *     one at a time - no lock needed for it.
 *   - The totals are shared between connections: they take a lock.
 *   - A repeating timer that prints a live progress line once a second (a
 *     repeating timer never runs concurrently with itself), and a one-shot
 *     timer that ends the run.
 *   - PIER_MSG_WAITALL to receive an echo whole, however TCP splits it.
 *   - Stopping early on Ctrl-C / SIGINT / SIGTERM, the way iocpserver.c
 *     explains (a handler that calls no pier function; the stop runs on
 *     the loop): every connection ends after its current echo and the
 *     summary is printed.  A second signal kills.
 *   - Refusals told apart from errors: a connect refused on every address,
 *     or a connection reset or closed before its first echo (what a
 *     server's condition function REJECTing looks like where the OS
 *     completes the handshake first), is counted as refused.
 *
 * How to run it
 *   iocpclient -h HOST -p PORT [-n CONNS] [-b BYTES] [-s SECONDS] [-t THREADS]
 *       open CONNS connections (default 8) to HOST:PORT - an echo server
 *       such as examples/iocpserver or examples/iocpserverex - and for
 *       SECONDS (default 10) let each send a message of BYTES bytes
 *       (default 4096, at most 1 MiB), check every byte of its echo and
 *       send the next; the loop runs on THREADS threads (default 4).
 *       -h is the host, as in the Winsock sample: --help is the help.
 *       Example: iocpserverex -p 5007 & iocpclient -h localhost -p 5007 -s 3
 *   iocpclient --selftest
 *       the same, for 2 seconds with 8 connections to "localhost", against
 *       a small echo server on the same loop
 *   iocpclient --help
 *   PIER_BACKEND=name picks the provider.
 *
 * Output: a progress line each second, then a summary; MB/s counts
 * megabytes (10^6 bytes) of echo received and verified.  Exit status 0 when
 * every connection connected and every echo was right (after a signal:
 * when nothing went wrong until then); 1 on any refusal, mismatch or error
 * (each one is reported on stderr); 2 for a bad command line.
 *
 * Expected output of --selftest (the numbers vary):
 *   iocpclient: pier 0.1.0 on provider libevent, 4 threads, 8 connections to localhost port 40337, 4096 bytes, 2 s
 *   iocpclient: 1 s: 8 connections, 21873 msgs/s, 89.6 MB/s, 0 errors
 *   iocpclient: 2 s: 8 connections, 22410 msgs/s, 91.8 MB/s, 0 errors
 *   iocpclient: 8 connections (8 connected, 0 refused), 44283 messages, 181383168 bytes verified in 2.00 s: 22141 msgs/s, 90.7 MB/s, 0 errors
 *   iocpclient: selftest ok
 *
 * Build in the tree (make examples/iocpclient) or against an installed pier:
 *   cc iocpclient.c $(pkg-config --cflags --libs pier) -lpthread -o iocpclient
 */
/* struct addrinfo's fields (pier_resolve), sigaction and socketpair are
   POSIX: ask for them even under a strict -std=c99. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200112L
#endif
#include <pier.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* one mutex, for the totals shared between connections                */
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

#define DEFAULT_CONNS 8
#define DEFAULT_BYTES 4096
#define DEFAULT_SECONDS 10
#define DEFAULT_THREADS 4
#define MAX_CONNS 4096
#define MAX_BYTES (1024 * 1024)
#define MAX_SECONDS 86400
#define SELFTEST_SECONDS 2
#define GRACE_MS 10000 /* after the run: time left for the last echoes */

/* A connection: touched only from its own socket's callbacks. */
struct conn {
  int id;
  unsigned long round;
  pier_socket *sock;
  pier_op op;
  const struct addrinfo *ai; /* the address being tried */
  int connected;
  int eof;                   /* the server closed it (end of stream) */
  unsigned char *out, *in;
};

static pier_loop *loop;
static const char *host = NULL;
static unsigned port = 0;
static int nconns = DEFAULT_CONNS, seconds = DEFAULT_SECONDS;
static size_t msglen = DEFAULT_BYTES;
static struct conn *conns;
static struct addrinfo *addrs; /* from pier_resolve */
static pier_op resolve_op;
static pier_timer ticker, stopper, grace;

/* Shared: behind the lock. */
static lock_t totals_lock;
static struct {
  unsigned long long bytes, messages;
  int open;      /* connections connected and not yet ended */
  int connected; /* connections that connected (and were not refused) */
  int refused;   /* connections the server refused (not errors) */
  int done;      /* connections ended */
  int errors;    /* failures of any kind, mismatches included */
  int stop_run;  /* stop_run() has been called */
  int stopping;  /* the run's time is up: finish the round and end */
  int aborted;   /* the grace period ran out */
  int signalled; /* stopped early by a signal */
  int unwatched; /* signals_unwatch() has been called */
  uint64_t start_ms, last_ms;
  unsigned long long last_bytes, last_messages;
} totals;

/* The selftest's server (on the same loop). */
static pier_socket *listener;
static pier_op accept_op;

static void count_error(void) {
  lock(&totals_lock);
  totals.errors++;
  unlock(&totals_lock);
}

/* ------------------------------------------------------------------ */
/* the end of the run                                                  */
/* ------------------------------------------------------------------ */

/* All connections are done: stop the timers and the selftest's server,
   so the loop has nothing left and every thread's run returns. */
static void signals_unwatch(void);

static void all_done(void) {
  signals_unwatch();
  pier_timer_stop(&ticker);
  pier_timer_stop(&stopper);
  pier_timer_stop(&grace);
  if (listener != NULL) {
    int rc = pier_close(listener, NULL);
    if (rc != 0) {
      fprintf(stderr, "iocpclient: pier_close: %s\n", pier_strerror(rc));
      count_error();
    }
  }
}

/* Progress: what happened since the last line. */
static void on_tick(pier_timer *t) {
  (void)t;
  uint64_t now = pier_loop_now(loop);
  lock(&totals_lock);
  double secs = (double)(now - totals.last_ms) / 1000.0;
  unsigned long long msgs = totals.messages - totals.last_messages;
  unsigned long long bytes = totals.bytes - totals.last_bytes;
  int open = totals.open, errors = totals.errors;
  totals.last_ms = now;
  totals.last_messages = totals.messages;
  totals.last_bytes = totals.bytes;
  uint64_t elapsed = now - totals.start_ms;
  unlock(&totals_lock);
  if (secs <= 0) secs = 0.001;
  printf("iocpclient: %llu s: %d connections, %.0f msgs/s, %.1f MB/s, "
         "%d errors\n", (unsigned long long)((elapsed + 500) / 1000), open,
         (double)msgs / secs, (double)bytes / 1e6 / secs, errors);
}

static void on_grace(pier_timer *t);

/* The time is up, or a signal came: every connection ends after its
   current echo.  Once, on a loop thread. */
static void stop_run(void) {
  lock(&totals_lock);
  int first = !totals.stop_run;
  totals.stop_run = 1;
  unlock(&totals_lock);
  if (!first) return;
  pier_timer_stop(&stopper);
  /* A server that stops echoing must not keep us forever: the grace timer
     starts first, so the last connection's all_done() stops it... */
  int rc = pier_timer_start(&grace, GRACE_MS, 0, on_grace);
  if (rc != 0) {
    fprintf(stderr, "iocpclient: pier_timer_start: %s\n", pier_strerror(rc));
    count_error();
  }
  lock(&totals_lock);
  totals.stopping = 1;
  int finished = totals.done == nconns;
  unlock(&totals_lock);
  /* ...or, if they all ended already (on other threads), we do. */
  if (finished) pier_timer_stop(&grace);
}

static void on_stop(pier_timer *t) {
  (void)t;
  stop_run();
}

/* ------------------------------------------------------------------ */
/* stopping early on Ctrl-C / SIGINT / SIGTERM (see iocpserver.c)      */
/* ------------------------------------------------------------------ */

/* On a loop thread: say so, then end the run as its timer would. */
static void stop_by_signal(const char *name) {
  printf("iocpclient: %s: stopping after the current echoes\n", name);
  lock(&totals_lock);
  totals.signalled = 1;
  unlock(&totals_lock);
  signals_unwatch(); /* a second signal kills */
  stop_run();
}

/* Once: from the first signal or all_done(), whichever comes first. */
static int first_unwatch(void) {
  lock(&totals_lock);
  int first = !totals.unwatched;
  totals.unwatched = 1;
  unlock(&totals_lock);
  return first;
}

#ifdef _WIN32
/* Windows: the console control handler runs on a thread of its own,
   where pier_loop_post may be called; the stop then runs on the loop. */
static pier_op ctrl_op;

static void on_ctrl_posted(pier_op *op, int status) {
  (void)op;
  (void)status;
  stop_by_signal("Ctrl-C");
}

static BOOL WINAPI on_ctrl(DWORD event) {
  if (event != CTRL_C_EVENT && event != CTRL_BREAK_EVENT) return FALSE;
  return pier_loop_post(loop, &ctrl_op, on_ctrl_posted) == 0;
}

static int signals_watch(void) {
  if (SetConsoleCtrlHandler(on_ctrl, TRUE)) return 0;
  fprintf(stderr, "iocpclient: SetConsoleCtrlHandler: error %lu\n",
          (unsigned long)GetLastError());
  return -1;
}

/* From now on Ctrl-C has its default effect: it ends the process. */
static void signals_unwatch(void) {
  if (first_unwatch()) SetConsoleCtrlHandler(on_ctrl, FALSE);
}
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
  if (status != 0 || op->bytes == 0) return; /* closed: the run is over */
  stop_by_signal(signal_number == SIGINT ? "SIGINT" : "SIGTERM");
}

static int signals_watch(void) {
  int sv[2], rc;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    fprintf(stderr, "iocpclient: socketpair: %s\n", strerror(errno));
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
    fprintf(stderr, "iocpclient: signals: %s\n", pier_strerror(rc));
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
  if (!first_unwatch()) return;
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  pier_close(signal_sock, NULL);
  close(signal_fd);
}
#endif

/* ------------------------------------------------------------------ */
/* the client connections                                              */
/* ------------------------------------------------------------------ */

/* Did the server refuse c?  Its connect was refused on every address, or
   it was reset or closed before its first echo: a condition function's
   REJECT where the OS completes the handshake before the server decides. */
static int refused(const struct conn *c, int status) {
  return status == PIER_ECONNREFUSED ||
         (c->round == 0 && (c->eof || status == PIER_ECONNRESET ||
                            status == PIER_ECONNABORTED ||
                            status == PIER_EPIPE));
}

static void conn_end(struct conn *c, int status, const char *what) {
  int refusal = refused(c, status);
  if (status != 0)
    fprintf(stderr, "iocpclient: connection %d round %lu: %s%s: %s\n",
            c->id, c->round, refusal ? "refused, " : "", what,
            pier_strerror(status));
  int rc = pier_close(c->sock, NULL);
  if (rc != 0) fprintf(stderr, "iocpclient: pier_close: %s\n", pier_strerror(rc));
  lock(&totals_lock);
  if (refusal) totals.refused++;
  else if (status != 0) totals.errors++;
  if (refusal && c->connected) totals.connected--; /* reset at once */
  if (rc != 0) totals.errors++;
  if (c->connected) totals.open--;
  int last = ++totals.done == nconns;
  unlock(&totals_lock);
  if (last) all_done();
}

static void conn_send(struct conn *c);
static void conn_connect(struct conn *c);

static void on_echo(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status != 0) { conn_end(c, status, "recv"); return; }
  if (op->bytes != msglen) { /* WAITALL: only at the end of the stream */
    c->eof = 1;
    conn_end(c, PIER_EPROTO,
             op->bytes == 0 ? "closed by the server" : "echo cut short");
    return;
  }
  if (memcmp(c->in, c->out, msglen) != 0) {
    size_t i = 0;
    while (c->in[i] == c->out[i]) i++;
    fprintf(stderr, "iocpclient: connection %d round %lu: byte %zu is %u, "
            "sent %u\n", c->id, c->round, i, c->in[i], c->out[i]);
    conn_end(c, PIER_EPROTO, "echo differs");
    return;
  }
  lock(&totals_lock);
  totals.bytes += msglen;
  totals.messages++;
  int stopping = totals.stopping;
  unlock(&totals_lock);
  c->round++;
  if (stopping) {
    /* Half-close: the server sees the end of the stream and closes. */
    int rc = pier_shutdown(c->sock, PIER_SHUT_WR);
    conn_end(c, rc, "pier_shutdown");
    return;
  }
  conn_send(c);
}

static void on_sent(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status != 0) { conn_end(c, status, "send"); return; }
  pier_buf b = pier_buf_init(c->in, msglen);
  int rc = pier_recv(c->sock, &c->op, &b, 1, PIER_MSG_WAITALL, on_echo);
  if (rc != 0) conn_end(c, rc, "pier_recv");
}

static void conn_send(struct conn *c) {
  /* A different pattern every round, so a stale echo would be caught. */
  unsigned seed = (unsigned)c->id * 131u + (unsigned)c->round * 7u;
  for (size_t i = 0; i < msglen; i++)
    c->out[i] = (unsigned char)(seed + i * 13u + (i >> 8));
  pier_buf b = pier_buf_init(c->out, msglen);
  int rc = pier_send(c->sock, &c->op, &b, 1, 0, on_sent);
  if (rc != 0) conn_end(c, rc, "pier_send");
}

static void on_connected(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status != 0) {
    if (c->ai->ai_next != NULL) {
      /* Try the next address of the name (e.g. 127.0.0.1 after ::1). */
      pier_close(c->sock, NULL);
      c->ai = c->ai->ai_next;
      conn_connect(c);
      return;
    }
    conn_end(c, status, "connect");
    return;
  }
  c->connected = 1;
  lock(&totals_lock);
  totals.open++;
  totals.connected++;
  unlock(&totals_lock);
  conn_send(c);
}

/* Open a socket for c->ai's family and connect it. */
static void conn_connect(struct conn *c) {
  for (; c->ai != NULL; c->ai = c->ai->ai_next) {
    const pier_protocol_info *proto =
        pier_protocol_find(c->ai->ai_family == AF_INET6 ? "tcp6" : "tcp4");
    if (proto == NULL || c->ai->ai_family != proto->family) continue;
    int rc = pier_socket_open(loop, proto, 0, &c->sock);
    if (rc != 0) continue; /* e.g. no IPv6 here: the next address */
    rc = pier_connect(c->sock, &c->op, c->ai->ai_addr, c->ai->ai_addrlen,
                      NULL, NULL, on_connected);
    if (rc == 0) return;
    pier_close(c->sock, NULL);
  }
  /* No address could even be tried: count this connection as ended. */
  fprintf(stderr, "iocpclient: connection %d: no usable address for %s\n",
          c->id, host);
  lock(&totals_lock);
  totals.errors++;
  int last = ++totals.done == nconns;
  unlock(&totals_lock);
  if (last) all_done();
}

/* The name is resolved: start every connection and the timers. */
static void on_resolved(pier_op *op, int status) {
  if (status != 0) {
    fprintf(stderr, "iocpclient: resolving %s: %s\n", host,
            pier_strerror(status));
    count_error();
    all_done();
    return;
  }
  addrs = op->addrinfo; /* ours; freed in main once the loop is done */
  lock(&totals_lock);
  int stop = totals.stop_run; /* a signal came first */
  unlock(&totals_lock);
  if (stop) {
    all_done();
    return;
  }
  uint64_t now = pier_loop_now(loop);
  totals.start_ms = totals.last_ms = now;
  int rc = pier_timer_start(&ticker, 1000, 1000, on_tick);
  if (rc == 0) rc = pier_timer_start(&stopper, (uint64_t)seconds * 1000, 0,
                                     on_stop);
  if (rc != 0) {
    fprintf(stderr, "iocpclient: timers: %s\n", pier_strerror(rc));
    count_error();
    all_done();
    return;
  }
  for (int i = 0; i < nconns; i++) {
    struct conn *c = &conns[i];
    c->ai = addrs;
    conn_connect(c);
  }
}

/* The grace period after the run ran out: some echo never came. */
static void on_grace(pier_timer *t) {
  (void)t;
  fprintf(stderr, "iocpclient: echoes still missing %d ms after the run, "
          "giving up\n", GRACE_MS);
  lock(&totals_lock);
  totals.errors++;
  totals.aborted = 1;
  unlock(&totals_lock);
  pier_loop_stop(loop);
}

/* ------------------------------------------------------------------ */
/* the selftest's echo server                                          */
/* ------------------------------------------------------------------ */

struct echo {
  pier_socket *sock;
  pier_op op;
  char buf[16384];
};

static void on_echo_closed(pier_socket *s) { free(pier_socket_get_data(s)); }

static void echo_recv(struct echo *e);

static void echo_close(struct echo *e, int status) {
  if (status != 0 && status != PIER_ECANCELED && status != PIER_ECONNRESET) {
    fprintf(stderr, "iocpclient: server: %s\n", pier_strerror(status));
    count_error();
  }
  int rc = pier_close(e->sock, on_echo_closed);
  if (rc != 0) fprintf(stderr, "iocpclient: server: pier_close: %s\n",
                       pier_strerror(rc));
}

static void on_echo_sent(pier_op *op, int status) {
  struct echo *e = op->data;
  if (status != 0) echo_close(e, status);
  else echo_recv(e);
}

static void on_echo_recv(pier_op *op, int status) {
  struct echo *e = op->data;
  if (status != 0 || op->bytes == 0) { echo_close(e, status); return; }
  pier_buf b = pier_buf_init(e->buf, op->bytes);
  int rc = pier_send(e->sock, &e->op, &b, 1, 0, on_echo_sent);
  if (rc != 0) echo_close(e, rc);
}

static void echo_recv(struct echo *e) {
  pier_buf b = pier_buf_init(e->buf, sizeof e->buf);
  int rc = pier_recv(e->sock, &e->op, &b, 1, 0, on_echo_recv);
  if (rc != 0) echo_close(e, rc);
}

static void on_accept(pier_op *op, int status) {
  if (status == PIER_ECANCELED) return; /* all_done closed the listener */
  if (status != 0) {
    fprintf(stderr, "iocpclient: server: accept: %s\n", pier_strerror(status));
    count_error();
    return;
  }
  struct echo *e = calloc(1, sizeof *e);
  if (e == NULL) {
    fprintf(stderr, "iocpclient: server: out of memory\n");
    pier_close(op->accepted, NULL);
  } else {
    e->sock = op->accepted;
    e->op.data = e;
    pier_socket_set_data(e->sock, e);
    echo_recv(e);
  }
  int rc = pier_accept(listener, &accept_op, NULL, NULL, on_accept);
  if (rc != 0) fprintf(stderr, "iocpclient: server: pier_accept: %s\n",
                       pier_strerror(rc));
}

/* Listen on 127.0.0.1, on a free port. */
static int start_server(unsigned *out_port) {
  struct sockaddr_in addr;
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &listener);
  if (rc == 0) rc = pier_bind(listener, (struct sockaddr *)&addr, sizeof addr);
  if (rc == 0) rc = pier_listen(listener, 0);
  if (rc == 0) rc = pier_getsockname(listener, &ss, &len);
  if (rc == 0) rc = pier_accept(listener, &accept_op, NULL, NULL, on_accept);
  if (rc == 0) *out_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return rc;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* A usage error: name the argument and what is wrong; exit status 2. */
static void usage_error(const char *arg, const char *why) {
  fprintf(stderr, "iocpclient: %s: %s (iocpclient --help lists the options)\n", arg,
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
    fprintf(stderr, "iocpclient: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: iocpclient -h HOST -p PORT [-n CONNS] [-b BYTES] [-s SECONDS] "
    "[-t THREADS]\n"
    "       iocpclient --selftest | --help\n"
    "Stress an echo server: each connection sends BYTES and verifies every "
    "echoed\n"
    "byte, again and again for SECONDS or until Ctrl-C, SIGINT or SIGTERM.  "
    "A\n"
    "progress line each second, a summary at the end; exit status 1 on any\n"
    "refusal, mismatch or error.\n"
    "  -h HOST     the server's name or numeric address; required\n"
    "  -p PORT     the server's port, 1 to 65535; required\n"
    "  -n CONNS    connections, 1 to %d; default %d\n"
    "  -b BYTES    bytes per message, 1 to %d; default %d\n"
    "  -s SECONDS  how long, 1 to %d; default %d\n"
    "  -t THREADS  threads serving the loop, 1 to %d; default %d\n"
    "  --selftest  the same against an echo server in this process, %d s\n"
    "  --help      this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here).\n",
    MAX_CONNS, DEFAULT_CONNS, MAX_BYTES, DEFAULT_BYTES, MAX_SECONDS,
    DEFAULT_SECONDS, PIER_LOOP_MAX_THREADS, DEFAULT_THREADS,
    SELFTEST_SECONDS);
}

int main(int argc, char **argv) {
  int selftest = 0, threads = DEFAULT_THREADS, rc;
  /* -h is the host, as in the Winsock sample: only --help for help. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0) { usage(stdout); return 0; }
    if (strcmp(a, "--selftest") == 0) selftest = 1;
    else if (strcmp(a, "-h") == 0) host = value(argc, argv, &i);
    else if (strcmp(a, "-p") == 0)
      port = (unsigned)number(a, value(argc, argv, &i), 1, 65535);
    else if (strcmp(a, "-n") == 0)
      nconns = (int)number(a, value(argc, argv, &i), 1, MAX_CONNS);
    else if (strcmp(a, "-b") == 0)
      msglen = (size_t)number(a, value(argc, argv, &i), 1, MAX_BYTES);
    else if (strcmp(a, "-s") == 0)
      seconds = (int)number(a, value(argc, argv, &i), 1, MAX_SECONDS);
    else if (strcmp(a, "-t") == 0)
      threads = (int)number(a, value(argc, argv, &i), 1, PIER_LOOP_MAX_THREADS);
    else usage_error(a, "unknown option");
  }
  if (selftest) {
    host = "localhost"; /* a name, to exercise pier_resolve */
    seconds = SELFTEST_SECONDS;
  }
  if (host == NULL) usage_error("-h HOST", "required");
  if (port == 0 && !selftest) usage_error("-p PORT", "required");
  setvbuf(stdout, NULL, _IOLBF, 0);
  lock_init(&totals_lock);

  pier_loop_options opts = {sizeof opts, NULL, 0, (unsigned)threads};
  if ((rc = pier_loop_new(&opts, &loop)) != 0) {
    fprintf(stderr, "iocpclient: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  if (selftest && (rc = start_server(&port)) != 0) {
    fprintf(stderr, "iocpclient: selftest server: %s\n", pier_strerror(rc));
    return 1;
  }
  printf("iocpclient: pier %s on provider %s, %d threads, %d connections to "
         "%s port %u, %zu bytes, %d s\n", pier_version_string(),
         pier_loop_backend(loop), threads, nconns, host, port, msglen,
         seconds);

  conns = calloc((size_t)nconns, sizeof *conns);
  if (conns == NULL) {
    fprintf(stderr, "iocpclient: out of memory\n");
    return 1;
  }
  for (int i = 0; i < nconns; i++) {
    struct conn *c = &conns[i];
    c->id = i + 1;
    c->op.data = c;
    c->out = malloc(msglen);
    c->in = malloc(msglen);
    if (c->out == NULL || c->in == NULL) {
      fprintf(stderr, "iocpclient: out of memory\n");
      return 1;
    }
  }
  rc = pier_timer_init(loop, &ticker);
  if (rc == 0) rc = pier_timer_init(loop, &stopper);
  if (rc == 0) rc = pier_timer_init(loop, &grace);
  if (rc != 0) {
    fprintf(stderr, "iocpclient: pier_timer_init: %s\n", pier_strerror(rc));
    return 1;
  }

  totals.start_ms = totals.last_ms = pier_loop_now(loop);
  if (signals_watch() != 0) return 1;

  /* Resolve on a worker thread; on_resolved starts the connections. */
  char service[16];
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(service, sizeof service, "%u", port);
  rc = pier_resolve(loop, &resolve_op, host, service, &hints, on_resolved);
  if (rc != 0) {
    fprintf(stderr, "iocpclient: pier_resolve: %s\n", pier_strerror(rc));
    return 1;
  }

  /* This thread and threads - 1 more run the loop until it has nothing
     left: every connection closed, the timers stopped. */
  rc = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (rc < 0) {
    fprintf(stderr, "iocpclient: pier_loop_run: %s\n", pier_strerror(rc));
    totals.errors++;
  }
  uint64_t ms = pier_loop_now(loop) - totals.start_ms;
  /* After an abort connections are still open: the loop cannot be freed,
     and the process exits anyway. */
  if (!totals.aborted && (rc = pier_loop_free(loop)) != 0) {
    fprintf(stderr, "iocpclient: pier_loop_free: %s\n", pier_strerror(rc));
    totals.errors++;
  }
  pier_freeaddrinfo(addrs);

  double secs = ms ? (double)ms / 1000.0 : 0.001;
  printf("iocpclient: %d connections (%d connected, %d refused), %llu "
         "messages, %llu bytes verified in %.2f s: %.0f msgs/s, %.1f MB/s, "
         "%d errors\n", nconns, totals.connected, totals.refused,
         totals.messages, totals.bytes, secs,
         (double)totals.messages / secs, (double)totals.bytes / 1e6 / secs,
         totals.errors);
  /* Every connection must have had at least one echo verified - unless a
     signal cut the run short. */
  int ok = totals.errors == 0 && totals.refused == 0 &&
           (totals.signalled || totals.done == nconns);
  for (int i = 0; i < nconns; i++) {
    if (conns[i].round == 0 && !totals.signalled) ok = 0;
    if (!totals.aborted) {
      free(conns[i].out);
      free(conns[i].in);
    }
  }
  if (!totals.aborted) free(conns);
  if (selftest) printf("iocpclient: selftest %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
