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
 *
 * How to run it
 *   iocpserver -p PORT [-t THREADS] [--deny CIDR]...
 *                                       serve on 127.0.0.1:PORT (default
 *                                       5004) with THREADS (4) threads until
 *                                       killed, refusing callers in each
 *                                       CIDR (e.g. 127.0.0.2/32, ::1/128);
 *                                       drive it with examples/iocpclient
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
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest:
 *   iocpserver: pier 0.1.0 on provider libevent, 4 threads, listening on 127.0.0.1:45001
 *   iocpserver: condition: caller denied (127.0.0.2/32)
 *   iocpserver: 16 connections, 16 closed, 3920244 bytes echoed
 *   iocpserver: selftest ok (16 clients verified, 1 denied)
 * and exit status 0 (1 on any failure).
 *
 * Build in the tree (make examples/iocpserver) or against an installed pier:
 *   cc iocpserver.c $(pkg-config --cflags --libs pier) -lpthread -o iocpserver
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

/* Shared between connections, so behind the lock. */
static lock_t stats_lock;
static struct {
  unsigned long opened, closed, failures;
  unsigned long long bytes;
  int clients_done, clients_ok, stopping;
  int denied, denied_client_ok; /* condition REJECTs; the selftest's check */
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

/* Parse "address/bits" with a numeric pier_resolve (blocking form). */
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
  const unsigned char *p;
  size_t n = addr_bytes(op.addrinfo->ai_addr, &p);
  d->family = op.addrinfo->ai_addr->sa_family;
  memcpy(d->addr, p, n);
  pier_freeaddrinfo(op.addrinfo);
  long bits = slash ? strtol(slash + 1, NULL, 10) : (long)(n * 8);
  if (n == 0 || bits < 0 || bits > (long)(n * 8)) return PIER_EINVAL;
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

static void on_accept(pier_op *op, int status);

static void post_accept(pier_op *op) {
  int rc = pier_accept(listener, op, deny_listed, NULL, on_accept);
  if (rc != 0) count_failure("pier_accept", rc);
}

static void on_accept(pier_op *op, int status) {
  if (status == PIER_ECANCELED) return; /* the listener is closing */
  if (status != 0) {
    count_failure("accept", status);
    post_accept(op);
    return;
  }
  if (accept_close) { /* admitted by the condition function; done */
    int rc = pier_close(op->accepted, NULL);
    if (rc != 0) count_failure("pier_close", rc);
    lock(&stats_lock);
    stats.opened++;
    stats.closed++;
    unlock(&stats_lock);
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

int main(int argc, char **argv) {
  unsigned port = 5004;
  int selftest = 0, threads = 4, rc;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--selftest") == 0) selftest = 1;
    else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) port = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--accept-close") == 0) accept_close = 1;
    else if (strcmp(argv[i], "--deny") == 0 && i + 1 < argc) i++; /* below */
    else {
      fprintf(stderr, "usage: iocpserver -p PORT [-t THREADS] [--deny CIDR]... "
                      "[--accept-close]\n       iocpserver --selftest | --help\n");
      return strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  if (selftest) port = 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  lock_init(&stats_lock);

  /* The loop and its thread pool (PIER_EINVAL above PIER_LOOP_MAX_THREADS). */
  pier_loop_options opts = {sizeof opts, NULL, 0, (unsigned)threads};
  if (threads < 1 || (rc = pier_loop_new(&opts, &loop)) != 0) {
    fprintf(stderr, "iocpserver: pier_loop_new: %s\n",
            pier_strerror(threads < 1 ? PIER_EINVAL : rc));
    return 1;
  }
  /* The --deny ranges, parsed now that there is a loop to resolve on. */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--deny") != 0) continue;
    if ((rc = add_deny(argv[++i])) != 0) {
      fprintf(stderr, "iocpserver: --deny %s: %s\n", argv[i], pier_strerror(rc));
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
     (or pier_loop_stop); pier joins its threads before returning. */
  rc = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (rc < 0) count_failure("pier_loop_run", rc);
  if ((rc = pier_loop_free(loop)) != 0) count_failure("pier_loop_free", rc);

  printf("iocpserver: %lu connections, %lu closed, %llu bytes echoed\n",
         stats.opened, stats.closed, stats.bytes);
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
