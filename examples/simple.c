/* SPDX-License-Identifier: MIT */
/*
 * examples/simple.c - the "simple" server of the Winsock samples: an echo
 * server made of blocking calls, one thread per TCP client, or a single
 * recvfrom/sendto loop for UDP.
 *
 * What it shows
 *   - Blocking calls: every pier operation started with cb == NULL blocks
 *     until it is done and returns its status, exactly like Winsock's
 *     accept/recv/send/recvfrom/sendto on a blocking socket.  No callback,
 *     and no loop has to be running for them.
 *   - TCP, thread per client: the main thread blocks in pier_accept; each
 *     accepted connection gets a thread of its own that echoes what it
 *     receives until the client shuts down its side.
 *   - UDP (-u): no connections, so no threads: one socket, and a loop of
 *     blocking pier_recvfrom (which also tells who sent the datagram) and
 *     pier_sendto back to that address.  Each datagram is echoed whole.
 *   - The loop is created with several threads (pier_loop_options.threads)
 *     only so that every pier call may be made from any thread (see
 *     pier_loop_new in pier.h); it is run once, at the end, to let the close
 *     callbacks of the sockets run before pier_loop_free.
 *
 * How to run it
 *   simple -p PORT        serve TCP on 127.0.0.1:PORT until killed; try it
 *                         with `simplec -h 127.0.0.1 -p PORT`
 *   simple -p PORT -u     serve UDP on 127.0.0.1:PORT until killed; try it
 *                         with `simplec -h 127.0.0.1 -p PORT -u`
 *   simple --selftest     TCP: serve 3 clients on a free port while a client
 *                         thread in this process connects 3 times and checks
 *                         every echoed byte; then UDP: echo 5 datagrams (up
 *                         to 8000 bytes) to a client thread that checks them
 *   simple --help
 *   PIER_BACKEND=name picks the provider (pier_providers lists them).
 *
 * Expected output of --selftest (ports vary):
 *   simple: pier 0.1.0 on provider libevent, TCP on 127.0.0.1:40127
 *   simple: client 1 from 127.0.0.1:51234, serving it in a thread
 *   ...
 *   simple: client 2 done, 3 messages 108 bytes echoed
 *   ...
 *   simple: pier 0.1.0 on provider libevent, UDP on 127.0.0.1:40128
 *   simple: 31 bytes from 127.0.0.1:51240 echoed
 *   ...
 *   simple: selftest ok
 * and exit status 0 (1 on any failure, with pier_strerror's text; 2 for a
 * bad command line, with a message naming the argument).
 *
 * Build in the tree (make examples/simple) or against an installed pier:
 *   cc simple.c $(pkg-config --cflags --libs pier) -lpthread -o simple
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
/* threads: pthreads on POSIX, the Win32 API on Windows                */
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

#define MAX_CLIENTS 64
#define MAX_DATAGRAM 65535 /* the largest UDP payload there is (IPv4: 65507) */
#define SELFTEST_CLIENTS 3
#define SELFTEST_ROUNDS 3
#define SELFTEST_DATAGRAMS 5
#define WATCHDOG_MS 20000 /* the selftest must be done by then */

/* One accepted client and the thread that serves it. */
struct client {
  int id;
  pier_socket *sock;
  thread_t thread;
  size_t messages, bytes; /* what it echoed */
  int rc;                 /* 0, or the first error */
};

static struct sockaddr_in loopback(unsigned port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((unsigned short)port);
  return sin;
}

/* "a.b.c.d:port" of an IPv4 address, into buf. */
static const char *addr_text(const struct sockaddr_storage *ss, char *buf,
                             size_t cap) {
  const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
  const unsigned char *a = (const unsigned char *)&sin->sin_addr;
  snprintf(buf, cap, "%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3],
           ntohs(sin->sin_port));
  return buf;
}

/* ------------------------------------------------------------------ */
/* the TCP server: one thread per client, blocking recv and send       */
/* ------------------------------------------------------------------ */

/*
 * Echo until the client shuts down its side.  A blocking pier_recv returns
 * 0 with op.bytes > 0 for data, 0 with op.bytes == 0 at the end of the
 * stream, or a negative PIER_E* code.  A blocking pier_send returns once
 * every byte has been accepted by the transport: no partial sends to loop
 * over.
 */
THREAD_FN(serve_client) {
  struct client *c = arg;
  char buf[4096];
  for (;;) {
    pier_op op = {0};
    pier_buf in = pier_buf_init(buf, sizeof buf);
    int rc = pier_recv(c->sock, &op, &in, 1, 0, NULL);
    if (rc != 0) {
      fprintf(stderr, "simple: client %d: pier_recv: %s\n", c->id,
              pier_strerror(rc));
      c->rc = rc;
      break;
    }
    if (op.bytes == 0) break; /* end of stream: the client is done */
    pier_buf out = pier_buf_init(buf, op.bytes);
    rc = pier_send(c->sock, &op, &out, 1, 0, NULL);
    if (rc != 0) {
      fprintf(stderr, "simple: client %d: pier_send: %s\n", c->id,
              pier_strerror(rc));
      c->rc = rc;
      break;
    }
    c->messages++;
    c->bytes += op.bytes;
  }
  printf("simple: client %d done, %zu messages %zu bytes echoed\n", c->id,
         c->messages, c->bytes);
  /* Asynchronous close: the socket is freed when the loop runs its close
     callback (here, in main, before pier_loop_free). */
  int rc = pier_close(c->sock, NULL);
  if (rc != 0) {
    fprintf(stderr, "simple: pier_close: %s\n", pier_strerror(rc));
    if (c->rc == 0) c->rc = rc;
  }
  THREAD_RETURN;
}

/* Accept up to max clients (0: no limit) and serve each in a thread. */
static int serve_tcp(pier_socket *listener, int max, struct client *clients) {
  int n = 0, rc = 0;
  while (max == 0 || n < max) {
    if (n == MAX_CLIENTS) {
      fprintf(stderr, "simple: %d clients served, stopping\n", n);
      break;
    }
    /* The blocking accept; the condition function is NULL: accept all. */
    pier_op op = {0};
    rc = pier_accept(listener, &op, NULL, NULL, NULL);
    if (rc != 0) {
      fprintf(stderr, "simple: pier_accept: %s\n", pier_strerror(rc));
      break;
    }
    struct client *c = &clients[n];
    c->id = n + 1;
    c->sock = op.accepted; /* ours now: serve_client closes it */
    struct sockaddr_storage peer;
    size_t len = sizeof peer;
    char text[64] = "?";
    if (pier_getpeername(c->sock, &peer, &len) == 0)
      addr_text(&peer, text, sizeof text);
    printf("simple: client %d from %s, serving it in a thread\n", c->id, text);
    if (thread_start(&c->thread, serve_client, c) != 0) {
      fprintf(stderr, "simple: cannot start a thread\n");
      pier_close(c->sock, NULL);
      rc = PIER_ENOMEM;
      break;
    }
    n++;
  }
  /* Wait for every client's thread. */
  for (int i = 0; i < n; i++) {
    thread_join(clients[i].thread);
    if (clients[i].rc != 0 && rc == 0) rc = clients[i].rc;
  }
  return rc;
}

/* ------------------------------------------------------------------ */
/* the UDP server: one blocking recvfrom / sendto loop                 */
/* ------------------------------------------------------------------ */

/*
 * Echo max datagrams (0: no limit), each back to whoever sent it.  A
 * blocking pier_recvfrom returns one whole datagram (PIER_MSG_TRUNC in
 * op.flags if it was larger than the buffer) and the sender's address in
 * from / op.addrlen; pier_sendto sends it back as one datagram.
 */
static int serve_udp(pier_socket *s, int max) {
  static char buf[MAX_DATAGRAM];
  int n = 0;
  while (max == 0 || n < max) {
    struct sockaddr_storage from;
    pier_op op = {0};
    pier_buf b = pier_buf_init(buf, sizeof buf);
    int rc = pier_recvfrom(s, &op, &b, 1, 0, &from, NULL);
    if (rc == PIER_ECONNRESET) {
      /* Windows reports an ICMP "port unreachable" for an earlier sendto
         as a reset on the next receive; a UDP server just goes on. */
      continue;
    }
    if (rc != 0) {
      fprintf(stderr, "simple: pier_recvfrom: %s\n", pier_strerror(rc));
      return rc;
    }
    char text[64] = "?";
    addr_text(&from, text, sizeof text);
    if (op.flags & PIER_MSG_TRUNC)
      fprintf(stderr, "simple: datagram from %s cut to %zu bytes\n", text,
              op.bytes);
    b = pier_buf_init(buf, op.bytes);
    size_t got = op.bytes;
    rc = pier_sendto(s, &op, &b, 1, 0, (struct sockaddr *)&from, op.addrlen,
                     NULL);
    if (rc != 0) {
      /* One client's trouble (e.g. gone away) does not stop the server. */
      fprintf(stderr, "simple: pier_sendto %s: %s\n", text, pier_strerror(rc));
    } else {
      printf("simple: %zu bytes from %s echoed\n", got, text);
    }
    n++;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* the selftest's client threads                                       */
/* ------------------------------------------------------------------ */

struct selftest {
  pier_loop *loop;
  struct sockaddr_in server;
  int rc;
};

/* Send one message and read its echo back whole (PIER_MSG_WAITALL). */
static int echo_once(pier_socket *s, const char *msg, size_t len) {
  char back[256];
  pier_op op = {0};
  pier_buf out = pier_buf_init((void *)msg, len);
  int rc = pier_send(s, &op, &out, 1, 0, NULL);
  if (rc != 0) return rc;
  pier_buf in = pier_buf_init(back, len);
  if ((rc = pier_recv(s, &op, &in, 1, PIER_MSG_WAITALL, NULL)) != 0) return rc;
  if (op.bytes != len || memcmp(back, msg, len) != 0) return PIER_EPROTO;
  return 0;
}

/*
 * TCP: connect all clients first, then talk to them in turn: the server
 * has them all open at once, each in its own thread.
 */
THREAD_FN(selftest_tcp_client) {
  struct selftest *t = arg;
  pier_socket *s[SELFTEST_CLIENTS] = {0};
  int rc = 0, i, r;
  for (i = 0; i < SELFTEST_CLIENTS && rc == 0; i++) {
    pier_op op = {0};
    rc = pier_socket_open(t->loop, pier_protocol_find("tcp4"), 0, &s[i]);
    if (rc == 0)
      rc = pier_connect(s[i], &op, (struct sockaddr *)&t->server,
                        sizeof t->server, NULL, NULL, NULL);
    if (rc != 0)
      fprintf(stderr, "selftest: client %d: connect: %s\n", i + 1,
              pier_strerror(rc));
  }
  for (r = 0; r < SELFTEST_ROUNDS && rc == 0; r++) {
    for (i = SELFTEST_CLIENTS - 1; i >= 0 && rc == 0; i--) {
      char msg[64];
      int len = snprintf(msg, sizeof msg, "round %d for client %d, hello", r,
                         i + 1);
      if ((rc = echo_once(s[i], msg, (size_t)len)) != 0)
        fprintf(stderr, "selftest: client %d: echo: %s\n", i + 1,
                pier_strerror(rc));
    }
  }
  /* Shut down our side (the server's recv sees the end of the stream),
     then close. */
  for (i = 0; i < SELFTEST_CLIENTS; i++) {
    if (s[i] == NULL) continue;
    int src = pier_shutdown(s[i], PIER_SHUT_WR);
    if (src != 0 && rc == 0) rc = src;
    src = pier_close(s[i], NULL);
    if (src != 0 && rc == 0) rc = src;
  }
  t->rc = rc;
  THREAD_RETURN;
}

/* UDP: SELFTEST_DATAGRAMS datagrams of growing size, each echo checked. */
THREAD_FN(selftest_udp_client) {
  struct selftest *t = arg;
  static char out[8000], back[8192];
  pier_socket *s = NULL;
  int rc = pier_socket_open(t->loop, pier_protocol_find("udp4"), 0, &s);
  for (int i = 0; rc == 0 && i < SELFTEST_DATAGRAMS; i++) {
    size_t len = i + 1 == SELFTEST_DATAGRAMS ? sizeof out : (size_t)31 << i;
    for (size_t k = 0; k < len; k++) out[k] = (char)('A' + (i * 7 + k) % 26);
    pier_op op = {0};
    pier_buf b = pier_buf_init(out, len);
    rc = pier_sendto(s, &op, &b, 1, 0, (struct sockaddr *)&t->server,
                     sizeof t->server, NULL);
    if (rc != 0) break;
    struct sockaddr_storage from;
    b = pier_buf_init(back, sizeof back);
    if ((rc = pier_recvfrom(s, &op, &b, 1, 0, &from, NULL)) != 0) break;
    if (op.bytes != len || memcmp(back, out, len) != 0) rc = PIER_EPROTO;
  }
  if (rc != 0)
    fprintf(stderr, "selftest: UDP client: %s\n", pier_strerror(rc));
  if (s != NULL) {
    int crc = pier_close(s, NULL);
    if (rc == 0) rc = crc;
  }
  t->rc = rc;
  THREAD_RETURN;
}

/* A hung selftest fails instead of blocking CI. */
THREAD_FN(watchdog) {
  (void)arg;
  sleep_ms(WATCHDOG_MS);
  fprintf(stderr, "simple: selftest did not finish in %d ms\n", WATCHDOG_MS);
  exit(1);
  THREAD_RETURN;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/*
 * Serve TCP (udp == 0) or UDP on 127.0.0.1:port (0: a free port).  In the
 * selftest a client thread of this process is the other side, and the
 * server stops after max clients (TCP) or datagrams (UDP).
 */
static int run(pier_loop *loop, int udp, unsigned port, int selftest) {
  static struct client clients[MAX_CLIENTS];
  static struct selftest st;
  pier_socket *s = NULL;
  struct sockaddr_in addr = loopback(port);
  int rc = pier_socket_open(loop, pier_protocol_find(udp ? "udp4" : "tcp4"), 0,
                            &s);
  /* Restarting a TCP server must not wait for old connections' TIME_WAIT. */
  if (rc == 0 && !udp && !selftest)
    rc = pier_setsockopt(s, PIER_SO_REUSEADDR, 1);
  if (rc == 0) rc = pier_bind(s, (struct sockaddr *)&addr, sizeof addr);
  if (rc == 0 && !udp) rc = pier_listen(s, 0);
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  if (rc == 0) rc = pier_getsockname(s, &ss, &len);
  if (rc != 0) {
    fprintf(stderr, "simple: %s socket: %s\n", udp ? "UDP" : "TCP",
            pier_strerror(rc));
    if (s != NULL) pier_close(s, NULL);
    return rc;
  }
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  printf("simple: pier %s on provider %s, %s on 127.0.0.1:%u\n",
         pier_version_string(), pier_loop_backend(loop), udp ? "UDP" : "TCP",
         port);

  thread_t client;
  int client_started = 0;
  if (selftest) {
    memset(&st, 0, sizeof st);
    st.loop = loop;
    st.server = loopback(port);
    if (thread_start(&client, udp ? selftest_udp_client : selftest_tcp_client,
                     &st) != 0) {
      fprintf(stderr, "simple: cannot start a thread\n");
      rc = PIER_ENOMEM;
    } else {
      client_started = 1;
    }
  }
  if (rc == 0) {
    if (udp)
      rc = serve_udp(s, selftest ? SELFTEST_DATAGRAMS : 0);
    else
      rc = serve_tcp(s, selftest ? SELFTEST_CLIENTS : 0, clients);
  }
  if (client_started) {
    thread_join(client);
    if (st.rc != 0 && rc == 0) rc = st.rc;
  }
  int crc = pier_close(s, NULL); /* freed once the loop runs */
  if (crc != 0) {
    fprintf(stderr, "simple: pier_close: %s\n", pier_strerror(crc));
    if (rc == 0) rc = crc;
  }
  return rc;
}

/* A usage error: name the argument and what is wrong; exit status 2. */
static void usage_error(const char *arg, const char *why) {
  fprintf(stderr, "simple: %s: %s (simple --help lists the options)\n", arg,
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
    fprintf(stderr, "simple: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: simple -p PORT [-u]\n"
    "       simple --selftest | --help\n"
    "Echo server on 127.0.0.1 with blocking calls, until killed: TCP with a "
    "thread\n"
    "per client, or UDP (a recvfrom/sendto loop).  Try it with simplec.\n"
    "  -p PORT     listen on PORT, 0 to 65535 (0: any free port); required\n"
    "  -u          UDP; default TCP\n"
    "  --selftest  TCP, then UDP, each against a client thread of this "
    "process\n"
    "  -h, --help  this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here).\n");
}

int main(int argc, char **argv) {
  long port = -1; /* none given */
  int udp = 0, selftest = 0, rc, i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(a, "--selftest") == 0) selftest = 1;
    else if (strcmp(a, "-u") == 0) udp = 1;
    else if (strcmp(a, "-p") == 0)
      port = number(a, value(argc, argv, &i), 0, 65535);
    else usage_error(a, "unknown option");
  }
  if (!selftest && port < 0) usage_error("-p PORT", "required");
  setvbuf(stdout, NULL, _IOLBF, 0);

  /* A loop served by several threads: then every pier call may be made
     from any thread, which is what thread-per-client needs. */
  pier_loop_options opts = {sizeof opts, NULL, 0, 4};
  pier_loop *loop;
  if ((rc = pier_loop_new(&opts, &loop)) != 0) {
    fprintf(stderr, "simple: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }

  if (selftest) {
    thread_t dog;
    if (thread_start(&dog, watchdog, NULL) != 0) {
      fprintf(stderr, "simple: cannot start a thread\n");
      return 1;
    }
    rc = run(loop, 0, 0, 1);      /* TCP */
    if (rc == 0) rc = run(loop, 1, 0, 1); /* then UDP */
  } else {
    rc = run(loop, udp, (unsigned)port, 0); /* until killed */
  }

  /* Run the loop: it returns once every close callback has run, and then
     the loop can be freed. */
  int r = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (r < 0) {
    fprintf(stderr, "simple: pier_loop_run: %s\n", pier_strerror(r));
    if (rc == 0) rc = r;
  }
  int frc = pier_loop_free(loop);
  if (frc != 0) {
    fprintf(stderr, "simple: pier_loop_free: %s\n", pier_strerror(frc));
    if (rc == 0) rc = frc;
  }
  if (selftest) printf("simple: selftest %s\n", rc == 0 ? "ok" : "FAILED");
  return rc == 0 ? 0 : 1;
}
