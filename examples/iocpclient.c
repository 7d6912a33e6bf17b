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
 *
 * How to run it
 *   iocpclient -h HOST -p PORT [-n CONNS] [-b BYTES] [-s SECONDS] [-t THREADS]
 *       open CONNS connections (default 8) to HOST:PORT - an echo server
 *       such as examples/iocpserver or examples/iocpserverex - and for
 *       SECONDS (default 10) let each send a message of BYTES bytes
 *       (default 4096, at most 1 MiB), check every byte of its echo and
 *       send the next; the loop runs on THREADS threads (default 4).
 *       Example: iocpserverex -p 5007 & iocpclient -h localhost -p 5007 -s 3
 *   iocpclient --selftest
 *       the same, for 2 seconds with 8 connections to "localhost", against
 *       a small echo server on the same loop
 *   iocpclient --help
 *   PIER_BACKEND=name picks the provider.
 *
 * Output: a progress line each second, then a summary; MB/s counts
 * megabytes (10^6 bytes) of echo received and verified.  Exit status 0 when
 * every connection connected and every echo was right; 1 on any mismatch or
 * error (each one is reported on stderr); 2 for a bad command line.
 *
 * Expected output of --selftest (the numbers vary):
 *   iocpclient: pier 0.1.0 on provider libevent, 4 threads, 8 connections to localhost port 40337, 4096 bytes, 2 s
 *   iocpclient: 1 s: 8 connections, 21873 msgs/s, 89.6 MB/s, 0 errors
 *   iocpclient: 2 s: 8 connections, 22410 msgs/s, 91.8 MB/s, 0 errors
 *   iocpclient: 8 connections, 44283 messages, 181383168 bytes verified in 2.00 s: 22141 msgs/s, 90.7 MB/s, 0 errors
 *   iocpclient: selftest ok
 *
 * Build in the tree (make examples/iocpclient) or against an installed pier:
 *   cc iocpclient.c $(pkg-config --cflags --libs pier) -lpthread -o iocpclient
 */
/* struct addrinfo's fields (pier_resolve) are POSIX: ask for them even
   under a strict -std=c99. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200112L
#endif
#include <pier.h>

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
#  include <pthread.h>
typedef pthread_mutex_t lock_t;
static void lock_init(lock_t *l) { pthread_mutex_init(l, NULL); }
static void lock(lock_t *l) { pthread_mutex_lock(l); }
static void unlock(lock_t *l) { pthread_mutex_unlock(l); }
#endif

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
  unsigned char *out, *in;
};

static pier_loop *loop;
static const char *host = NULL;
static unsigned port = 0;
static int nconns = 8, seconds = 10;
static size_t msglen = 4096;
static struct conn *conns;
static struct addrinfo *addrs; /* from pier_resolve */
static pier_op resolve_op;
static pier_timer ticker, stopper, grace;

/* Shared: behind the lock. */
static lock_t totals_lock;
static struct {
  unsigned long long bytes, messages;
  int open;      /* connections connected and not yet ended */
  int done;      /* connections ended */
  int errors;    /* failures of any kind, mismatches included */
  int stopping;  /* the run's time is up: finish the round and end */
  int aborted;   /* the grace period ran out */
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
static void all_done(void) {
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

/* The time is up: every connection ends after its current echo. */
static void on_stop(pier_timer *t) {
  (void)t;
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

/* ------------------------------------------------------------------ */
/* the client connections                                              */
/* ------------------------------------------------------------------ */

static void conn_end(struct conn *c, int status, const char *what) {
  if (status != 0)
    fprintf(stderr, "iocpclient: connection %d round %lu: %s: %s\n", c->id,
            c->round, what, pier_strerror(status));
  int rc = pier_close(c->sock, NULL);
  if (rc != 0) fprintf(stderr, "iocpclient: pier_close: %s\n", pier_strerror(rc));
  lock(&totals_lock);
  if (status != 0 || rc != 0) totals.errors++;
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
    conn_end(c, PIER_EPROTO, "echo cut short");
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

static void usage(FILE *to) {
  fprintf(to,
    "usage: iocpclient -h HOST -p PORT [-n CONNS] [-b BYTES] [-s SECONDS] "
    "[-t THREADS]\n"
    "       iocpclient --selftest | --help\n"
    "Stress an echo server: CONNS connections (default 8, at most %d) each "
    "send\n"
    "BYTES (default 4096, at most %d) and verify every echoed byte, again "
    "and\n"
    "again for SECONDS (default 10), on a loop served by THREADS threads "
    "(default 4).\n"
    "HOST is a name or a numeric address.  A progress line each second, a "
    "summary\n"
    "at the end; exit status 1 on any mismatch or error.\n"
    "  --selftest  the same against an echo server in this process, %d s\n"
    "PIER_BACKEND=name picks the provider.\n",
    MAX_CONNS, MAX_BYTES, SELFTEST_SECONDS);
}

/* A whole number in [lo, hi], or -1. */
static long number(const char *s, long lo, long hi) {
  char *end;
  long v = strtol(s, &end, 10);
  return *s != '\0' && *end == '\0' && v >= lo && v <= hi ? v : -1;
}

int main(int argc, char **argv) {
  int selftest = 0, threads = 4, rc, bad = 0;
  long v;
  for (int i = 1; i < argc && !bad; i++) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0) { usage(stdout); return 0; }
    if (strcmp(a, "--selftest") == 0) { selftest = 1; continue; }
    if (val == NULL) { bad = 1; break; }
    i++;
    if (strcmp(a, "-h") == 0) host = val;
    else if (strcmp(a, "-p") == 0 && (v = number(val, 1, 65535)) > 0) port = (unsigned)v;
    else if (strcmp(a, "-n") == 0 && (v = number(val, 1, MAX_CONNS)) > 0) nconns = (int)v;
    else if (strcmp(a, "-b") == 0 && (v = number(val, 1, MAX_BYTES)) > 0) msglen = (size_t)v;
    else if (strcmp(a, "-s") == 0 && (v = number(val, 1, MAX_SECONDS)) > 0) seconds = (int)v;
    else if (strcmp(a, "-t") == 0 && (v = number(val, 1, PIER_LOOP_MAX_THREADS)) > 0) threads = (int)v;
    else bad = 1;
  }
  if (selftest) {
    host = "localhost"; /* a name, to exercise pier_resolve */
    seconds = SELFTEST_SECONDS;
  }
  if (bad || host == NULL || (port == 0 && !selftest)) {
    usage(stderr);
    return 2;
  }
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
  printf("iocpclient: %d connections, %llu messages, %llu bytes verified in "
         "%.2f s: %.0f msgs/s, %.1f MB/s, %d errors\n", nconns,
         totals.messages, totals.bytes, secs,
         (double)totals.messages / secs, (double)totals.bytes / 1e6 / secs,
         totals.errors);
  /* Every connection must have had at least one echo verified. */
  int ok = totals.errors == 0 && totals.done == nconns;
  for (int i = 0; i < nconns; i++) {
    if (conns[i].round == 0) ok = 0;
    if (!totals.aborted) {
      free(conns[i].out);
      free(conns[i].in);
    }
  }
  if (!totals.aborted) free(conns);
  if (selftest) printf("iocpclient: selftest %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
