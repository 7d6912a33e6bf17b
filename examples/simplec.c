/* SPDX-License-Identifier: MIT */
/*
 * examples/simplec.c - the "simplec" client of the Winsock samples: resolve
 * the server's name, then send messages and check their echoes, all with
 * blocking calls, over TCP or (-u) UDP.  Its server is examples/simple.
 *
 * What it shows
 *   - pier_resolve in its blocking form (cb == NULL): getaddrinfo in the
 *     calling thread; HOST may be a name or a numeric address, and the
 *     client tries the addresses in the order given until one works.
 *   - Blocking calls (cb == NULL): pier_connect, pier_send and pier_recv
 *     return when done, with the status a callback would have had and the
 *     results (op.bytes) in the pier_op.  No loop has to run for them.
 *   - TCP: PIER_MSG_WAITALL makes the receive return only once the whole
 *     echo is here, however TCP splits it on the way; pier_shutdown
 *     (PIER_SHUT_WR) then tells the server "no more from me".
 *   - UDP: pier_sendto / pier_recvfrom, one datagram per message.  UDP may
 *     lose datagrams, so each receive waits at most a second (pier_poll
 *     with a timeout on the blocking socket) and the message is sent again,
 *     up to 3 times; each message carries its number, so a late echo of an
 *     earlier one is recognised and skipped.
 *
 * How to run it
 *   simplec -h HOST -p PORT [-u] [-n COUNT] [-l LENGTH]
 *       connect to HOST:PORT (examples/simple -p PORT, with -u for UDP),
 *       send COUNT messages (default 5) of LENGTH bytes (default 64) and
 *       check each echo; exit status 1 if any is missing or different
 *   simplec --selftest
 *       TCP to "localhost" then UDP to 127.0.0.1, 5 messages each, against
 *       a small blocking echo server on a thread of this process
 *   simplec --help
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest (ports vary):
 *   simplec: pier 0.1.0 on provider libevent, TCP selftest server on port 41813
 *   simplec: connected to 127.0.0.1 port 41813 (TCP)
 *   simplec: 5 messages of 64 bytes echoed and verified
 *   simplec: selftest server echoed 320 bytes
 *   simplec: pier 0.1.0 on provider libevent, UDP selftest server on port 41814
 *   simplec: sending to 127.0.0.1 port 41814 (UDP)
 *   simplec: 5 messages of 64 bytes echoed and verified
 *   simplec: selftest server echoed 320 bytes
 *   simplec: selftest ok
 * and exit status 0 (1 on any failure, with pier_strerror's text; 2 for a
 * bad command line, with a message naming the argument).
 *
 * Build in the tree (make examples/simplec) or against an installed pier:
 *   cc simplec.c $(pkg-config --cflags --libs pier) -lpthread -o simplec
 */
/* struct addrinfo's fields and nanosleep are POSIX: ask for them even
   under a strict -std=c99. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200112L
#endif
#include <pier.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* threads (for the selftest's server): pthreads, or Win32 on Windows  */
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

#define MAX_LEN 65507      /* the largest UDP payload over IPv4 */
#define MAX_COUNT 1000000  /* -n */
#define UDP_WAIT_MS 1000   /* UDP: how long to wait for an echo */
#define UDP_TRIES 3        /* UDP: sends of one message before giving up */
#define WATCHDOG_MS 20000  /* the selftest must be done by then */

/* The text of an address, for the messages. */
static const char *addr_text(const struct sockaddr *sa, char *buf, size_t cap) {
  if (sa->sa_family == AF_INET) {
    const unsigned char *a =
        (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    snprintf(buf, cap, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
  } else if (sa->sa_family == AF_INET6) {
    const unsigned char *a =
        (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    snprintf(buf, cap, "%x:%x:%x:%x:%x:%x:%x:%x", a[0] << 8 | a[1],
             a[2] << 8 | a[3], a[4] << 8 | a[5], a[6] << 8 | a[7],
             a[8] << 8 | a[9], a[10] << 8 | a[11], a[12] << 8 | a[13],
             a[14] << 8 | a[15]);
  } else {
    snprintf(buf, cap, "?");
  }
  return buf;
}

/*
 * Message i: its number in the first 4 bytes (when there is room), so a
 * late UDP echo of an earlier message can be told apart, then letters.
 */
static void make_message(char *out, size_t len, unsigned i) {
  for (size_t k = 0; k < len; k++) out[k] = (char)('a' + (i * 7 + k) % 26);
  if (len >= 4) {
    out[0] = (char)(i >> 24);
    out[1] = (char)(i >> 16);
    out[2] = (char)(i >> 8);
    out[3] = (char)i;
  }
}

/* The number an echo carries (the caller checks len >= 4). */
static unsigned message_number(const char *m) {
  const unsigned char *u = (const unsigned char *)m;
  return (unsigned)u[0] << 24 | (unsigned)u[1] << 16 | (unsigned)u[2] << 8 |
         u[3];
}

/* ------------------------------------------------------------------ */
/* the client                                                          */
/* ------------------------------------------------------------------ */

/* TCP: send the messages over the connected socket s, check the echoes. */
static int talk_tcp(pier_socket *s, int count, size_t len) {
  static char out[MAX_LEN], back[MAX_LEN];
  pier_op op = {0};
  int rc = 0;
  for (int i = 0; rc == 0 && i < count; i++) {
    make_message(out, len, (unsigned)i);
    pier_buf b = pier_buf_init(out, len);
    if ((rc = pier_send(s, &op, &b, 1, 0, NULL)) != 0) {
      fprintf(stderr, "simplec: pier_send: %s\n", pier_strerror(rc));
      break;
    }
    b = pier_buf_init(back, len);
    if ((rc = pier_recv(s, &op, &b, 1, PIER_MSG_WAITALL, NULL)) != 0) {
      fprintf(stderr, "simplec: pier_recv: %s\n", pier_strerror(rc));
      break;
    }
    if (op.bytes != len || memcmp(out, back, len) != 0) {
      fprintf(stderr, "simplec: message %d: %zu bytes back, %s\n", i + 1,
              op.bytes, op.bytes == len ? "different" : "expected more");
      rc = PIER_EPROTO;
    }
  }
  /* "No more from me": the server's receive sees the end of the stream. */
  if (rc == 0 && (rc = pier_shutdown(s, PIER_SHUT_WR)) != 0)
    fprintf(stderr, "simplec: pier_shutdown: %s\n", pier_strerror(rc));
  return rc;
}

/*
 * UDP: one message to `to` and its echo back, sent again up to UDP_TRIES
 * times if no echo comes within UDP_WAIT_MS.  PIER_ETIMEDOUT if none did.
 */
static int udp_exchange(pier_socket *s, const struct addrinfo *to,
                        const char *out, size_t len, unsigned number) {
  static char back[MAX_LEN + 1], earlier[MAX_LEN];
  for (int attempt = 0; attempt < UDP_TRIES; attempt++) {
    pier_op op = {0};
    pier_buf b = pier_buf_init((void *)out, len);
    int rc = pier_sendto(s, &op, &b, 1, 0, to->ai_addr, to->ai_addrlen, NULL);
    if (rc != 0) return rc;
    for (;;) {
      /* Wait for a datagram, at most UDP_WAIT_MS: pier_poll asks the OS
         about the socket, blocking or not. */
      pier_pollfd pfd = {s, PIER_POLLIN, 0};
      int n = pier_poll(&pfd, 1, UDP_WAIT_MS);
      if (n < 0) return n;
      if (n == 0) break; /* nothing: send again */
      struct sockaddr_storage from;
      b = pier_buf_init(back, sizeof back);
      rc = pier_recvfrom(s, &op, &b, 1, 0, &from, NULL);
      /* No server at that address: the OS may say so (ICMP). */
      if (rc == PIER_ECONNRESET || rc == PIER_ECONNREFUSED) return rc;
      if (rc != 0) return rc;
      if (op.bytes == len && len >= 4 && message_number(back) < number) {
        /* A late echo of an earlier message (we sent that one again):
           check it is intact, then wait on for this one's. */
        make_message(earlier, len, message_number(back));
        if (memcmp(back, earlier, len) == 0) continue;
      }
      if (op.bytes != len || memcmp(back, out, len) != 0) {
        fprintf(stderr, "simplec: message %u: %zu bytes back, %s\n",
                number + 1, op.bytes, op.bytes == len ? "different" :
                "expected another length");
        return PIER_EPROTO;
      }
      return 0;
    }
  }
  return PIER_ETIMEDOUT;
}

/* UDP: send the messages to `to` with s, check the echoes. */
static int talk_udp(pier_socket *s, const struct addrinfo *to, int count,
                    size_t len) {
  static char out[MAX_LEN];
  int rc = 0;
  for (int i = 0; rc == 0 && i < count; i++) {
    make_message(out, len, (unsigned)i);
    rc = udp_exchange(s, to, out, len, (unsigned)i);
    if (rc != 0)
      fprintf(stderr, "simplec: message %d: %s\n", i + 1, pier_strerror(rc));
  }
  return rc;
}

/*
 * Resolve host:port, then try its addresses in turn until one serves:
 * TCP, the first that accepts the connection; UDP, the first that echoes
 * the first message.  Send count messages of len bytes, verify each echo,
 * close.  Returns 0 or the first PIER_E* error.
 */
static int run_client(pier_loop *loop, const char *host, unsigned port,
                      int udp, int count, size_t len) {
  char service[16], text[64];
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM;
  snprintf(service, sizeof service, "%u", port);
  pier_op op = {0};
  int rc = pier_resolve(loop, &op, host, service, &hints, NULL);
  if (rc != 0) {
    fprintf(stderr, "simplec: resolving %s: %s\n", host, pier_strerror(rc));
    return rc;
  }
  struct addrinfo *list = op.addrinfo; /* ours: pier_freeaddrinfo */
  rc = PIER_EAI_NONAME;
  for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
    int v6 = ai->ai_family == AF_INET6;
    const pier_protocol_info *proto =
        pier_protocol_find(udp ? (v6 ? "udp6" : "udp4") : (v6 ? "tcp6" : "tcp4"));
    if (proto == NULL || proto->family != ai->ai_family) continue;
    pier_socket *s;
    if ((rc = pier_socket_open(loop, proto, 0, &s)) != 0) continue;
    addr_text(ai->ai_addr, text, sizeof text);
    if (udp) {
      printf("simplec: sending to %s port %u (UDP)\n", text, port);
      rc = talk_udp(s, ai, count, len);
    } else {
      pier_op cop = {0};
      rc = pier_connect(s, &cop, ai->ai_addr, ai->ai_addrlen, NULL, NULL, NULL);
      if (rc != 0) {
        fprintf(stderr, "simplec: connecting to %s port %u: %s\n", text, port,
                pier_strerror(rc));
      } else {
        printf("simplec: connected to %s port %u (TCP)\n", text, port);
        rc = talk_tcp(s, count, len);
      }
    }
    int crc = pier_close(s, NULL); /* freed when the loop next runs */
    if (crc != 0) {
      fprintf(stderr, "simplec: pier_close: %s\n", pier_strerror(crc));
      if (rc == 0) rc = crc;
    }
    /* Done, unless this address did not answer at all: then the next. */
    int unreachable = udp ? rc == PIER_ETIMEDOUT || rc == PIER_ECONNRESET ||
                                rc == PIER_ECONNREFUSED
                          : rc == PIER_ECONNREFUSED || rc == PIER_ETIMEDOUT ||
                                rc == PIER_ENETUNREACH ||
                                rc == PIER_EHOSTUNREACH;
    if (rc == 0 || !unreachable || ai->ai_next == NULL) break;
  }
  pier_freeaddrinfo(list);
  if (rc == 0)
    printf("simplec: %d messages of %zu bytes echoed and verified\n", count,
           len);
  return rc;
}

/* ------------------------------------------------------------------ */
/* the selftest's server: one blocking echo on a thread                */
/* ------------------------------------------------------------------ */

struct server {
  pier_socket *sock; /* TCP: the listener; UDP: the socket */
  int udp, count;    /* UDP: datagrams to echo */
  size_t bytes;
  int rc;
};

THREAD_FN(echo_server) {
  struct server *sv = arg;
  static char buf[MAX_LEN];
  pier_op op = {0};
  int rc = 0;
  if (sv->udp) {
    /* count datagrams, each back to its sender */
    for (int i = 0; rc == 0 && i < sv->count; i++) {
      struct sockaddr_storage from;
      pier_buf b = pier_buf_init(buf, sizeof buf);
      if ((rc = pier_recvfrom(sv->sock, &op, &b, 1, 0, &from, NULL)) != 0)
        break;
      b = pier_buf_init(buf, op.bytes);
      size_t got = op.bytes;
      rc = pier_sendto(sv->sock, &op, &b, 1, 0, (struct sockaddr *)&from,
                       op.addrlen, NULL);
      sv->bytes += got;
    }
  } else {
    /* one connection, until its end of stream */
    rc = pier_accept(sv->sock, &op, NULL, NULL, NULL);
    if (rc != 0) {
      fprintf(stderr, "simplec: server: pier_accept: %s\n", pier_strerror(rc));
      sv->rc = rc;
      THREAD_RETURN;
    }
    pier_socket *s = op.accepted;
    for (;;) {
      pier_buf b = pier_buf_init(buf, sizeof buf);
      if ((rc = pier_recv(s, &op, &b, 1, 0, NULL)) != 0 || op.bytes == 0)
        break; /* an error, or the end of the stream */
      b = pier_buf_init(buf, op.bytes);
      if ((rc = pier_send(s, &op, &b, 1, 0, NULL)) != 0) break;
      sv->bytes += op.bytes;
    }
    int crc = pier_close(s, NULL);
    if (rc == 0) rc = crc;
  }
  if (rc != 0) fprintf(stderr, "simplec: server: %s\n", pier_strerror(rc));
  sv->rc = rc;
  THREAD_RETURN;
}

THREAD_FN(watchdog) {
  (void)arg;
  sleep_ms(WATCHDOG_MS);
  fprintf(stderr, "simplec: selftest did not finish in %d ms\n", WATCHDOG_MS);
  exit(1);
  THREAD_RETURN;
}

/* Serve on 127.0.0.1:0 on a thread, and run the client against it. */
static int selftest(pier_loop *loop, int udp, const char *host, int count,
                    size_t len) {
  static struct server sv;
  struct sockaddr_in addr;
  struct sockaddr_storage ss;
  size_t sslen = sizeof ss;
  thread_t server;
  memset(&sv, 0, sizeof sv);
  sv.udp = udp;
  sv.count = count;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = pier_socket_open(loop, pier_protocol_find(udp ? "udp4" : "tcp4"), 0,
                            &sv.sock);
  if (rc == 0) rc = pier_bind(sv.sock, (struct sockaddr *)&addr, sizeof addr);
  if (rc == 0 && !udp) rc = pier_listen(sv.sock, 0);
  if (rc == 0) rc = pier_getsockname(sv.sock, &ss, &sslen);
  if (rc != 0) {
    fprintf(stderr, "simplec: selftest server: %s\n", pier_strerror(rc));
    if (sv.sock) pier_close(sv.sock, NULL);
    return rc;
  }
  unsigned port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  printf("simplec: pier %s on provider %s, %s selftest server on port %u\n",
         pier_version_string(), pier_loop_backend(loop), udp ? "UDP" : "TCP",
         port);
  if (thread_start(&server, echo_server, &sv) != 0) {
    fprintf(stderr, "simplec: cannot start a thread\n");
    pier_close(sv.sock, NULL);
    return PIER_ENOMEM;
  }
  rc = run_client(loop, host, port, udp, count, len);
  thread_join(server);
  printf("simplec: selftest server echoed %zu bytes\n", sv.bytes);
  if (rc == 0) rc = sv.rc;
  if (rc == 0 && sv.bytes != (size_t)count * len) rc = PIER_EPROTO;
  int crc = pier_close(sv.sock, NULL);
  if (rc == 0) rc = crc;
  return rc;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* A usage error: name the argument and what is wrong; exit status 2. */
static void usage_error(const char *arg, const char *why) {
  fprintf(stderr, "simplec: %s: %s (simplec --help lists the options)\n", arg,
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
    fprintf(stderr, "simplec: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: simplec -h HOST -p PORT [-u] [-n COUNT] [-l LENGTH]\n"
    "       simplec --selftest | --help\n"
    "Client of simple: send COUNT messages of LENGTH bytes to HOST:PORT and "
    "check\n"
    "every echo.\n"
    "  -h HOST     the server's name or numeric address; required\n"
    "  -p PORT     the server's port, 1 to 65535; required\n"
    "  -u          UDP; default TCP\n"
    "  -n COUNT    messages, 1 to %d; default 5\n"
    "  -l LENGTH   bytes per message, 1 to %d; default 64\n"
    "  --selftest  TCP to localhost, then UDP to 127.0.0.1, against a "
    "server thread\n"
    "  --help      this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here).\n",
    MAX_COUNT, MAX_LEN);
}

int main(int argc, char **argv) {
  const char *host = NULL;
  unsigned port = 0; /* none given */
  int count = 5, udp = 0, test = 0, rc;
  long len = 64;
  /* -h is the host, as in the Winsock sample: only --help for help. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0) { usage(stdout); return 0; }
    if (strcmp(a, "--selftest") == 0) test = 1;
    else if (strcmp(a, "-u") == 0) udp = 1;
    else if (strcmp(a, "-h") == 0) host = value(argc, argv, &i);
    else if (strcmp(a, "-p") == 0)
      port = (unsigned)number(a, value(argc, argv, &i), 1, 65535);
    else if (strcmp(a, "-n") == 0)
      count = (int)number(a, value(argc, argv, &i), 1, MAX_COUNT);
    else if (strcmp(a, "-l") == 0)
      len = number(a, value(argc, argv, &i), 1, MAX_LEN);
    else usage_error(a, "unknown option");
  }
  if (!test && host == NULL) usage_error("-h HOST", "required");
  if (!test && port == 0) usage_error("-p PORT", "required");
  setvbuf(stdout, NULL, _IOLBF, 0);

  /* Several threads on the loop: every pier call may then come from any
     thread (the selftest's server runs on one of its own). */
  pier_loop_options opts = {sizeof opts, NULL, 0, 2};
  pier_loop *loop;
  if ((rc = pier_loop_new(&opts, &loop)) != 0) {
    fprintf(stderr, "simplec: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  if (test) {
    thread_t dog;
    if (thread_start(&dog, watchdog, NULL) != 0) {
      fprintf(stderr, "simplec: cannot start a thread\n");
      return 1;
    }
    /* TCP to a name (resolved; every address tried), UDP to a number. */
    rc = selftest(loop, 0, "localhost", count, (size_t)len);
    if (rc == 0) rc = selftest(loop, 1, "127.0.0.1", count, (size_t)len);
  } else {
    rc = run_client(loop, host, port, udp, count, (size_t)len);
  }

  /* Let the close callbacks run, then free the loop. */
  int run = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (run < 0) {
    fprintf(stderr, "simplec: pier_loop_run: %s\n", pier_strerror(run));
    if (rc == 0) rc = run;
  }
  int frc = pier_loop_free(loop);
  if (frc != 0) {
    fprintf(stderr, "simplec: pier_loop_free: %s\n", pier_strerror(frc));
    if (rc == 0) rc = frc;
  }
  if (test) printf("simplec: selftest %s\n", rc == 0 ? "ok" : "FAILED");
  return rc == 0 ? 0 : 1;
}
