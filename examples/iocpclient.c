/*
 * examples/iocpclient.c - the "iocpclient" sample: a stress client that
 * opens many connections on one multi-threaded loop, verifies every echoed
 * byte and reports its throughput.
 *
 * What it shows
 *   - One loop served by several threads (pier_loop_options.threads) driving
 *     many connections; each connection's state is touched only from its own
 *     socket's callbacks, which pier runs one at a time - no lock needed.
 *   - The totals are shared between connections: they take a lock.
 *   - A repeating timer that prints live throughput once a second (a
 *     repeating timer never runs concurrently with itself).
 *   - PIER_MSG_WAITALL to receive an echo whole, however TCP splits it.
 *
 * How to run it
 *   iocpclient [-p port] [-c connections] [-n rounds] [-l length] [-t threads]
 *       connect to 127.0.0.1:port (default 5004, where examples/iocpserver
 *       listens) with 8 connections, each sending 200 messages of 4096 bytes
 *       and checking every echo, on 4 threads
 *   iocpclient --selftest
 *       the same against a small echo server on the same loop
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest (the numbers vary):
 *   iocpclient: pier 0.1.0 on provider libevent, 4 threads, 8 connections to 127.0.0.1:40337
 *   iocpclient: 8 connections, 6553600 bytes each way verified in 180 ms (69.4 MiB/s)
 *   iocpclient: selftest ok
 * and, when a run lasts longer than a second, a line per second like
 *   iocpclient: 1 s: 1024 messages, 4194304 bytes verified
 * Exit status 0 (1 on any failure).
 *
 * Build in the tree (make examples/iocpclient) or against an installed pier:
 *   cc iocpclient.c $(pkg-config --cflags --libs pier) -lpthread -o iocpclient
 */
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

#define MAX_CONNS 1024
#define MAX_LEN 65536
#define DEADLINE_MS 60000 /* selftest: 20 s */

/* A connection: touched only from its own socket's callbacks. */
struct conn {
  int id, round;
  pier_socket *sock;
  pier_op op;
  unsigned char *out, *in;
};

static pier_loop *loop;
static int nconns = 8, rounds = 200;
static size_t msglen = 4096;
static struct conn *conns;
static pier_timer ticker, deadline;
static uint64_t started_ms;

/* Shared: behind the lock. */
static lock_t totals_lock;
static struct {
  unsigned long long bytes, messages;
  int done, failed;
} totals;

/* The selftest's server (on the same loop). */
static pier_socket *listener;
static pier_op accept_op;

static struct sockaddr_in loopback(unsigned port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((unsigned short)port);
  return sin;
}

/* ------------------------------------------------------------------ */
/* the client connections                                              */
/* ------------------------------------------------------------------ */

/* All connections are done: stop the timers and the selftest's server,
   so the loop has nothing left and every thread's run returns. */
static void all_done(void) {
  pier_timer_stop(&ticker);
  pier_timer_stop(&deadline);
  if (listener != NULL) {
    int rc = pier_close(listener, NULL);
    if (rc != 0) fprintf(stderr, "iocpclient: pier_close: %s\n", pier_strerror(rc));
  }
}

static void conn_end(struct conn *c, int status, const char *what) {
  if (status != 0)
    fprintf(stderr, "iocpclient: connection %d round %d: %s: %s\n", c->id,
            c->round, what, pier_strerror(status));
  int rc = pier_close(c->sock, NULL);
  if (rc != 0) fprintf(stderr, "iocpclient: pier_close: %s\n", pier_strerror(rc));
  lock(&totals_lock);
  if (status != 0 || rc != 0) totals.failed++;
  int last = ++totals.done == nconns;
  unlock(&totals_lock);
  if (last) all_done();
}

static void conn_send(struct conn *c);

static void on_echo(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status != 0) { conn_end(c, status, "recv"); return; }
  if (op->bytes != msglen || memcmp(c->in, c->out, msglen) != 0) {
    conn_end(c, PIER_EPROTO, op->bytes != msglen ? "short echo" : "echo differs");
    return;
  }
  lock(&totals_lock);
  totals.bytes += msglen;
  totals.messages++;
  unlock(&totals_lock);
  if (++c->round == rounds) {
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
  for (size_t i = 0; i < msglen; i++)
    c->out[i] = (unsigned char)(i + (size_t)c->id * 13 + (size_t)c->round * 7);
  pier_buf b = pier_buf_init(c->out, msglen);
  int rc = pier_send(c->sock, &c->op, &b, 1, 0, on_sent);
  if (rc != 0) conn_end(c, rc, "pier_send");
}

static void on_connected(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status != 0) { conn_end(c, status, "connect"); return; }
  conn_send(c);
}

static void on_tick(pier_timer *t) {
  (void)t;
  lock(&totals_lock);
  unsigned long long bytes = totals.bytes, messages = totals.messages;
  unlock(&totals_lock);
  printf("iocpclient: %llu s: %llu messages, %llu bytes verified\n",
         (unsigned long long)((pier_loop_now(loop) - started_ms) / 1000),
         messages, bytes);
}

static void on_deadline(pier_timer *t) {
  (void)t;
  fprintf(stderr, "iocpclient: not finished in time, stopping\n");
  lock(&totals_lock);
  totals.failed++;
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
  if (status != 0 && status != PIER_ECANCELED && status != PIER_ECONNRESET)
    fprintf(stderr, "iocpclient: server: %s\n", pier_strerror(status));
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

static int start_server(unsigned *port) {
  struct sockaddr_in addr = loopback(0);
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  int rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &listener);
  if (rc == 0) rc = pier_bind(listener, (struct sockaddr *)&addr, sizeof addr);
  if (rc == 0) rc = pier_listen(listener, 0);
  if (rc == 0) rc = pier_getsockname(listener, &ss, &len);
  if (rc == 0) rc = pier_accept(listener, &accept_op, NULL, NULL, on_accept);
  if (rc == 0) *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return rc;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv) {
  unsigned port = 5004;
  int selftest = 0, threads = 4, rc;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--selftest") == 0) selftest = 1;
    else if (strcmp(a, "-p") == 0 && i + 1 < argc) port = (unsigned)atoi(argv[++i]);
    else if (strcmp(a, "-c") == 0 && i + 1 < argc) nconns = atoi(argv[++i]);
    else if (strcmp(a, "-n") == 0 && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (strcmp(a, "-l") == 0 && i + 1 < argc) msglen = (size_t)atol(argv[++i]);
    else if (strcmp(a, "-t") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else nconns = 0; /* usage below */
  }
  if (nconns < 1 || nconns > MAX_CONNS || rounds < 1 || msglen < 1 ||
      msglen > MAX_LEN || threads < 1 || threads > PIER_LOOP_MAX_THREADS) {
    fprintf(stderr, "usage: iocpclient [-p port] [-c connections] [-n rounds] "
                    "[-l length] [-t threads] | iocpclient --selftest\n");
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
         "127.0.0.1:%u\n", pier_version_string(), pier_loop_backend(loop),
         threads, nconns, port);

  conns = calloc((size_t)nconns, sizeof *conns);
  if (conns == NULL) {
    fprintf(stderr, "iocpclient: out of memory\n");
    return 1;
  }
  started_ms = pier_loop_now(loop);
  if ((rc = pier_timer_init(loop, &ticker)) == 0)
    rc = pier_timer_start(&ticker, 1000, 1000, on_tick);
  if (rc == 0 && (rc = pier_timer_init(loop, &deadline)) == 0)
    rc = pier_timer_start(&deadline, selftest ? 20000 : DEADLINE_MS, 0,
                          on_deadline);
  if (rc != 0) {
    fprintf(stderr, "iocpclient: timers: %s\n", pier_strerror(rc));
    return 1;
  }

  struct sockaddr_in to = loopback(port);
  for (int i = 0; i < nconns; i++) {
    struct conn *c = &conns[i];
    c->id = i + 1;
    c->op.data = c;
    c->out = malloc(msglen);
    c->in = malloc(msglen);
    rc = c->out && c->in ? 0 : PIER_ENOMEM;
    if (rc == 0)
      rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &c->sock);
    if (rc == 0)
      rc = pier_connect(c->sock, &c->op, (struct sockaddr *)&to, sizeof to,
                        NULL, NULL, on_connected);
    if (rc != 0) {
      fprintf(stderr, "iocpclient: connection %d: %s\n", c->id, pier_strerror(rc));
      return 1;
    }
  }

  /* This thread and threads - 1 more run the loop until it has nothing
     left: every connection closed, the timers stopped. */
  rc = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (rc < 0) {
    fprintf(stderr, "iocpclient: pier_loop_run: %s\n", pier_strerror(rc));
    totals.failed++;
  }
  uint64_t ms = pier_loop_now(loop) - started_ms;
  if ((rc = pier_loop_free(loop)) != 0) {
    fprintf(stderr, "iocpclient: pier_loop_free: %s\n", pier_strerror(rc));
    totals.failed++;
  }
  for (int i = 0; i < nconns; i++) {
    free(conns[i].out);
    free(conns[i].in);
  }
  free(conns);

  int ok = totals.failed == 0 &&
           totals.messages == (unsigned long long)nconns * (unsigned)rounds;
  printf("iocpclient: %d connections, %llu bytes each way verified in %llu ms "
         "(%.1f MiB/s)\n", nconns, totals.bytes, (unsigned long long)ms,
         ms ? (double)totals.bytes / 1048576.0 * 1000.0 / (double)ms : 0.0);
  if (selftest) printf("iocpclient: selftest %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
