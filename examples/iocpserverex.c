/*
 * examples/iocpserverex.c - the "iocpserverex" sample: the multi-threaded
 * echo server of iocpserver with the two tunings IOCP servers use under
 * load.
 *
 * What it shows (beyond iocpserver.c, which explains the threads and the
 * lock-free per-connection state)
 *   - PIER_SO_PREPOSTED_ACCEPTS on the listener, set before the first
 *     accept: how many accepts the provider keeps posted in the kernel
 *     (AcceptEx on the iocp provider), so a burst of callers is taken
 *     without waiting for the application to ask again.  Here 16, with
 *     NACCEPTS pier accepts outstanding on top.
 *   - PIER_SO_ZERO_READ on every accepted connection: a pending receive
 *     first waits with a zero-byte read, so thousands of idle connections
 *     keep no receive buffer locked in the kernel.
 *   Providers without the mechanism (libevent) accept both options, read
 *   them back and have nothing to tune: the program runs the same.
 *
 * How to run it
 *   iocpserverex [-p port] [-t threads]   serve on 127.0.0.1:port (default
 *                                         5007) until killed; drive it with
 *                                         iocpclient -p 5007
 *   iocpserverex --selftest               the server plus NCLIENTS clients
 *                                         on the same loop, checking every
 *                                         echoed byte
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest:
 *   iocpserverex: pier 0.1.0 on provider iocp, 4 threads, listening on 127.0.0.1:45001
 *   iocpserverex: 16 accepts pre-posted, zero-byte reads on
 *   iocpserverex: 16 connections, 16 closed, 3920244 bytes echoed
 *   iocpserverex: selftest ok (16 clients verified)
 * and exit status 0 (1 on any failure).
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

#define NACCEPTS 4        /* pier accepts outstanding on the listener */
#define PREPOSTED 16      /* accepts the provider keeps posted */
#define BUFSIZE 8192
#define NCLIENTS 16       /* selftest connections */
#define ROUNDS 30         /* selftest messages per connection */
#define DEADLINE_MS 20000

static pier_loop *loop;
static pier_socket *listener;
static pier_op accept_ops[NACCEPTS];
static pier_timer deadline;

/* Shared between connections, so behind the lock. */
static lock_t stats_lock;
static struct {
  unsigned long opened, closed, failures;
  unsigned long long bytes;
  int clients_done, clients_ok, stopping;
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

/* Per connection: only its own socket's callbacks touch it - no lock. */
struct conn {
  pier_socket *sock;
  pier_op op;               /* recv, then send, then recv ... */
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

static void on_conn_recv(pier_op *op, int status) {
  struct conn *c = op->data;
  if (status != 0 || op->bytes == 0) { /* an error, or the end of stream */
    if (status != 0 && status != PIER_ECANCELED && status != PIER_ECONNRESET)
      count_failure("recv", status);
    conn_close(c);
    return;
  }
  pier_buf b = pier_buf_init(c->buf, op->bytes);
  int rc = pier_send(c->sock, &c->op, &b, 1, 0, on_conn_sent);
  if (rc != 0) {
    count_failure("pier_send", rc);
    conn_close(c);
  }
}

static void conn_recv(struct conn *c) {
  pier_buf b = pier_buf_init(c->buf, sizeof c->buf);
  int rc = pier_recv(c->sock, &c->op, &b, 1, 0, on_conn_recv);
  if (rc != 0) {
    count_failure("pier_recv", rc);
    conn_close(c);
  }
}

/* Admit loopback callers only (this example never leaves the machine). */
static int loopback_only(pier_accept_info *info, void *ctx) {
  (void)ctx;
  const struct sockaddr *a = info->caller;
  if (a->sa_family == AF_INET &&
      (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127)
    return PIER_CF_ACCEPT;
  return PIER_CF_REJECT;
}

static void on_accept(pier_op *op, int status);

static void post_accept(pier_op *op) {
  int rc = pier_accept(listener, op, loopback_only, NULL, on_accept);
  if (rc != 0) count_failure("pier_accept", rc);
}

static void on_accept(pier_op *op, int status) {
  if (status == PIER_ECANCELED) return; /* the listener is closing */
  if (status != 0) {
    count_failure("accept", status);
    post_accept(op);
    return;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    count_failure("accept", PIER_ENOMEM);
    pier_close(op->accepted, NULL);
  } else {
    c->sock = op->accepted;
    c->op.data = c;
    /* Idle connections hold no kernel receive buffer (iocp). */
    int rc = pier_setsockopt(c->sock, PIER_SO_ZERO_READ, 1);
    if (rc != 0) count_failure("PIER_SO_ZERO_READ", rc);
    /* The new socket's callbacks cannot run before this one returns, so
       the order of these two lines does not matter. */
    pier_socket_set_data(c->sock, c);
    conn_recv(c);
    lock(&stats_lock);
    stats.opened++;
    unlock(&stats_lock);
  }
  post_accept(op); /* keep NACCEPTS posted */
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

int main(int argc, char **argv) {
  unsigned port = 5007;
  int selftest = 0, threads = 4, rc;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--selftest") == 0) selftest = 1;
    else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) port = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: iocpserverex [-p port] [-t threads] | "
                      "iocpserverex --selftest\n");
      return 2;
    }
  }
  if (selftest) port = 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  lock_init(&stats_lock);

  /* The loop and its thread pool (PIER_EINVAL above PIER_LOOP_MAX_THREADS). */
  pier_loop_options opts = {sizeof opts, NULL, 0, (unsigned)threads};
  if (threads < 1 || (rc = pier_loop_new(&opts, &loop)) != 0) {
    fprintf(stderr, "iocpserverex: pier_loop_new: %s\n",
            pier_strerror(threads < 1 ? PIER_EINVAL : rc));
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
  /* Before the first accept: how many the provider keeps posted. */
  if (rc == 0) rc = pier_setsockopt(listener, PIER_SO_PREPOSTED_ACCEPTS, PREPOSTED);
  int preposted = 0;
  if (rc == 0) rc = pier_getsockopt(listener, PIER_SO_PREPOSTED_ACCEPTS, &preposted);
  if (rc != 0) {
    fprintf(stderr, "iocpserverex: listener: %s\n", pier_strerror(rc));
    return 1;
  }
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  printf("iocpserverex: pier %s on provider %s, %d threads, listening on "
         "127.0.0.1:%u\n", pier_version_string(), pier_loop_backend(loop),
         threads, port);
  printf("iocpserverex: %d accepts pre-posted, zero-byte reads on\n", preposted);

  for (int i = 0; i < NACCEPTS; i++) post_accept(&accept_ops[i]);
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

  printf("iocpserverex: %lu connections, %lu closed, %llu bytes echoed\n",
         stats.opened, stats.closed, stats.bytes);
  int ok = stats.failures == 0;
  if (selftest) {
    ok = ok && stats.clients_ok == NCLIENTS && stats.opened == NCLIENTS &&
         stats.closed == NCLIENTS;
    printf("iocpserverex: selftest %s (%d clients verified)\n",
           ok ? "ok" : "FAILED", stats.clients_ok);
  }
  return ok ? 0 : 1;
}
