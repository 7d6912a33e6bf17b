/* SPDX-License-Identifier: MIT */
/*
 * examples/poll.c - the WSAPoll sample: a non-blocking echo server (and,
 * in the selftest, its non-blocking clients) driven by pier_poll alone.
 *
 * What it shows
 *   - pier_poll needs no running loop: it asks the OS (poll, WSAPoll) about
 *     the sockets' handles.  The loop exists only because sockets belong to
 *     one; it is run once at the end so the close callbacks can run.
 *   - Non-blocking sockets (PIER_SOCK_NONBLOCK) with the blocking form of
 *     the calls (cb == NULL): a call that would have to wait returns
 *     PIER_EWOULDBLOCK instead, and pier_poll says when to try again.
 *   - The readiness rules: a listener is readable when a caller waits; a
 *     connecting socket becomes writable when the connect has finished
 *     (PIER_SO_ERROR then says how); a connection is readable when data or
 *     the end of the stream is there, writable when a send would not block.
 *   - Never mix: pier_poll is for sockets with no overlapped operation
 *     pending (both would race for the same data).
 *
 * How to run it
 *   poll [-p port]    serve on 127.0.0.1:port (default 5005) until killed;
 *                     try `nc 127.0.0.1 5005`
 *   poll --selftest   the server and NCLIENTS non-blocking clients in one
 *                     pier_poll loop on one thread; each client sends a
 *                     message and checks the echo
 *   poll --help       the options, their ranges and defaults
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest (ports vary):
 *   poll: pier 0.1.0 on provider libevent, listening on 127.0.0.1:43907
 *   poll: client 1 connecting (would block)
 *   ...
 *   poll: accepted a connection from port 51000
 *   poll: client 1 connected
 *   poll: client 1: echo verified
 *   ...
 *   poll: selftest ok (3 echoes, 5 pier_poll calls)
 * and exit status 0 (1 on any failure; 2 for a bad command line, with a
 * message naming the argument).
 *
 * Build in the tree (make examples/poll) or against an installed pier:
 *   cc poll.c $(pkg-config --cflags --libs pier) -o poll
 */
#include <pier.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_FDS 64
#define NCLIENTS 3
#define DEFAULT_PORT 5005
#define DEADLINE_S 20

/* What an entry of the poll array is, and where it stands. */
enum kind { LISTENER, CONN, CLIENT };
enum state { CONNECTING, SENDING, RECEIVING };

struct entry {
  enum kind kind;
  enum state state;     /* clients */
  int id;               /* clients */
  char buf[512];
  size_t len, done;     /* bytes in buf, and how many are sent/received */
  char msg[64];         /* clients: what they sent */
};

static pier_pollfd fds[MAX_FDS];
static struct entry *ents[MAX_FDS];
static size_t nfds;
static int failures, echoes, clients_left;

static struct sockaddr_in loopback(unsigned port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((unsigned short)port);
  return sin;
}

static int add(pier_socket *s, unsigned events, struct entry *e) {
  if (nfds == MAX_FDS) return PIER_ENOMEM;
  fds[nfds].socket = s;
  fds[nfds].events = events;
  fds[nfds].revents = 0;
  ents[nfds++] = e;
  return 0;
}

/* Close entry i and drop it from the array (the last one moves in). */
static void drop(size_t i) {
  int rc = pier_close(fds[i].socket, NULL);
  if (rc != 0) {
    fprintf(stderr, "poll: pier_close: %s\n", pier_strerror(rc));
    failures++;
  }
  if (ents[i]->kind == CLIENT) clients_left--;
  free(ents[i]);
  nfds--;
  fds[i] = fds[nfds];
  ents[i] = ents[nfds];
}

/* A failed call on entry i: report it and drop the socket. */
static void fail(size_t i, const char *what, int rc) {
  fprintf(stderr, "poll: %s: %s\n", what, pier_strerror(rc));
  failures++;
  drop(i);
}

/* ------------------------------------------------------------------ */
/* the server's side                                                   */
/* ------------------------------------------------------------------ */

/* The listener is readable: accept every caller that waits. */
static void on_listener(size_t i) {
  for (;;) {
    pier_op op = {0};
    int rc = pier_accept(fds[i].socket, &op, NULL, NULL, NULL);
    if (rc == PIER_EWOULDBLOCK) return; /* nobody else waits */
    if (rc != 0) {
      fprintf(stderr, "poll: pier_accept: %s\n", pier_strerror(rc));
      failures++;
      return;
    }
    struct sockaddr_storage peer;
    size_t len = sizeof peer;
    struct entry *e = calloc(1, sizeof *e);
    if (e == NULL || (rc = add(op.accepted, PIER_POLLIN, e)) != 0) {
      fprintf(stderr, "poll: too many connections\n");
      free(e);
      pier_close(op.accepted, NULL);
      continue;
    }
    e->kind = CONN;
    if ((rc = pier_getpeername(op.accepted, &peer, &len)) != 0)
      fprintf(stderr, "poll: pier_getpeername: %s\n", pier_strerror(rc));
    else
      printf("poll: accepted a connection from port %u\n",
             ntohs(((struct sockaddr_in *)&peer)->sin_port));
  }
}

/* A server connection: read what came, then write it back, then read. */
static void on_conn(size_t i) {
  struct entry *e = ents[i];
  pier_socket *s = fds[i].socket;
  pier_op op = {0};
  int rc;
  if (fds[i].events & PIER_POLLIN) {
    pier_buf b = pier_buf_init(e->buf, sizeof e->buf);
    rc = pier_recv(s, &op, &b, 1, 0, NULL);
    if (rc == PIER_EWOULDBLOCK) return;
    if (rc == PIER_ECONNRESET || (rc == 0 && op.bytes == 0)) {
      drop(i); /* the client is gone: end of stream (or a reset) */
      return;
    }
    if (rc != 0) { fail(i, "server pier_recv", rc); return; }
    e->len = op.bytes;
    e->done = 0;
    fds[i].events = PIER_POLLOUT; /* now wait until we can echo */
    return;
  }
  pier_buf b = pier_buf_init(e->buf + e->done, e->len - e->done);
  rc = pier_send(s, &op, &b, 1, 0, NULL);
  if (rc == PIER_EWOULDBLOCK) return;
  if (rc != 0) { fail(i, "server pier_send", rc); return; }
  e->done += op.bytes; /* a non-blocking send may take only part */
  if (e->done == e->len) fds[i].events = PIER_POLLIN;
}

/* ------------------------------------------------------------------ */
/* the selftest's clients                                              */
/* ------------------------------------------------------------------ */

static void on_client(size_t i) {
  struct entry *e = ents[i];
  pier_socket *s = fds[i].socket;
  pier_op op = {0};
  int rc, err;
  switch (e->state) {
  case CONNECTING: /* writable: the connect has finished - how? */
    if ((rc = pier_getsockopt(s, PIER_SO_ERROR, &err)) != 0) {
      fail(i, "pier_getsockopt", rc);
      return;
    }
    if (err != 0) { fail(i, "connect", err); return; }
    printf("poll: client %d connected\n", e->id);
    e->state = SENDING;
    e->done = 0;
    /* and try to send at once: */
    /* fall through */
  case SENDING: {
    pier_buf b = pier_buf_init(e->msg + e->done, e->len - e->done);
    rc = pier_send(s, &op, &b, 1, 0, NULL);
    if (rc == PIER_EWOULDBLOCK) return;
    if (rc != 0) { fail(i, "client pier_send", rc); return; }
    if ((e->done += op.bytes) < e->len) return;
    e->state = RECEIVING;
    e->done = 0;
    fds[i].events = PIER_POLLIN;
    return;
  }
  case RECEIVING: {
    pier_buf b = pier_buf_init(e->buf + e->done, e->len - e->done);
    rc = pier_recv(s, &op, &b, 1, 0, NULL);
    if (rc == PIER_EWOULDBLOCK) return;
    if (rc != 0) { fail(i, "client pier_recv", rc); return; }
    if (op.bytes == 0) { fail(i, "client", PIER_ECONNRESET); return; }
    if ((e->done += op.bytes) < e->len) return;
    if (memcmp(e->buf, e->msg, e->len) != 0) { fail(i, "echo", PIER_EPROTO); return; }
    printf("poll: client %d: echo verified\n", e->id);
    echoes++;
    if ((rc = pier_shutdown(s, PIER_SHUT_WR)) != 0) {
      fail(i, "pier_shutdown", rc);
      return;
    }
    drop(i);
    return;
  }
  }
}

/* Open a non-blocking client and start its connect. */
static int start_client(pier_loop *loop, int id, unsigned port) {
  struct sockaddr_in to = loopback(port);
  pier_socket *s;
  pier_op op = {0};
  struct entry *e = calloc(1, sizeof *e);
  if (e == NULL) return PIER_ENOMEM;
  e->kind = CLIENT;
  e->id = id;
  e->len = (size_t)snprintf(e->msg, sizeof e->msg,
                            "client %d says hello through pier_poll", id);
  int rc = pier_socket_open(loop, pier_protocol_find("tcp4"), PIER_SOCK_NONBLOCK,
                            &s);
  if (rc != 0) { free(e); return rc; }
  /* Non-blocking: the blocking form returns PIER_EWOULDBLOCK and the
     connection goes on in the background; writable means finished. */
  rc = pier_connect(s, &op, (struct sockaddr *)&to, sizeof to, NULL, NULL, NULL);
  if (rc == PIER_EWOULDBLOCK) {
    printf("poll: client %d connecting (would block)\n", id);
    e->state = CONNECTING;
  } else if (rc == 0) {
    e->state = SENDING; /* connected at once (loopback may) */
  } else {
    pier_close(s, NULL);
    free(e);
    return rc;
  }
  if ((rc = add(s, PIER_POLLOUT, e)) != 0) {
    pier_close(s, NULL);
    free(e);
    return rc;
  }
  clients_left++;
  return 0;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* A usage error: name the argument and what is wrong; exit status 2. */
static void usage_error(const char *arg, const char *why) {
  fprintf(stderr, "poll: %s: %s (poll --help lists the options)\n", arg,
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
    fprintf(stderr, "poll: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: poll [-p PORT]\n"
    "       poll --selftest | --help\n"
    "Echo server on 127.0.0.1 on non-blocking sockets driven by pier_poll "
    "alone,\n"
    "until killed.\n"
    "  -p PORT     listen on PORT, 0 to 65535 (0: any free port); default "
    "%d\n"
    "  --selftest  the server and %d non-blocking clients in one pier_poll loop\n"
    "  -h, --help  this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here).\n",
    DEFAULT_PORT, NCLIENTS);
}

int main(int argc, char **argv) {
  unsigned port = DEFAULT_PORT;
  int selftest = 0, rc, polls = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(a, "--selftest") == 0) selftest = 1;
    else if (strcmp(a, "-p") == 0)
      port = (unsigned)number(a, value(argc, argv, &i), 0, 65535);
    else usage_error(a, "unknown option");
  }
  if (selftest) port = 0;
  setvbuf(stdout, NULL, _IOLBF, 0);

  pier_loop *loop;
  if ((rc = pier_loop_new(NULL, &loop)) != 0) {
    fprintf(stderr, "poll: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  /* A non-blocking listener. */
  pier_socket *listener;
  static struct entry listener_entry = {LISTENER, CONNECTING, 0, {0}, 0, 0, {0}};
  struct sockaddr_in addr = loopback(port);
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  rc = pier_socket_open(loop, pier_protocol_find("tcp4"), PIER_SOCK_NONBLOCK,
                        &listener);
  if (rc == 0 && !selftest) rc = pier_setsockopt(listener, PIER_SO_REUSEADDR, 1);
  if (rc == 0) rc = pier_bind(listener, (struct sockaddr *)&addr, sizeof addr);
  if (rc == 0) rc = pier_listen(listener, 0);
  if (rc == 0) rc = pier_getsockname(listener, &ss, &len);
  if (rc != 0) {
    fprintf(stderr, "poll: listener: %s\n", pier_strerror(rc));
    return 1;
  }
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  printf("poll: pier %s on provider %s, listening on 127.0.0.1:%u\n",
         pier_version_string(), pier_loop_backend(loop), port);
  /* The listener is entry 0 and stays there: drop() only moves the last
     entry into a hole, and the listener is never dropped while we poll. */
  add(listener, PIER_POLLIN, &listener_entry);

  for (int i = 1; selftest && i <= NCLIENTS; i++) {
    if ((rc = start_client(loop, i, port)) != 0) {
      fprintf(stderr, "poll: client %d: %s\n", i, pier_strerror(rc));
      return 1;
    }
  }

  /* The poll loop.  The selftest ends when its clients are done and the
     server has seen them go; a server runs until killed. */
  time_t until = time(NULL) + DEADLINE_S;
  while (!selftest || clients_left > 0 || nfds > 1) {
    if (selftest && time(NULL) > until) {
      fprintf(stderr, "poll: selftest did not finish in %d s\n", DEADLINE_S);
      failures++;
      break;
    }
    int n = pier_poll(fds, nfds, 1000);
    polls++;
    if (n < 0) {
      fprintf(stderr, "poll: pier_poll: %s\n", pier_strerror(n));
      failures++;
      break;
    }
    /* Walk backwards: drop() moves the last entry into the hole. */
    for (size_t i = nfds; i-- > 0;) {
      if (fds[i].revents == 0) continue;
      switch (ents[i]->kind) {
      case LISTENER: on_listener(i); break;
      case CONN: on_conn(i); break;
      case CLIENT: on_client(i); break;
      }
    }
  }

  /* Close what is left, run the loop so the close callbacks run, free. */
  while (nfds > 0) {
    if (ents[nfds - 1] != &listener_entry) {
      drop(nfds - 1);
    } else {
      if ((rc = pier_close(listener, NULL)) != 0) {
        fprintf(stderr, "poll: pier_close: %s\n", pier_strerror(rc));
        failures++;
      }
      nfds--;
    }
  }
  if ((rc = pier_loop_run(loop, PIER_RUN_DEFAULT)) < 0) {
    fprintf(stderr, "poll: pier_loop_run: %s\n", pier_strerror(rc));
    failures++;
  }
  if ((rc = pier_loop_free(loop)) != 0) {
    fprintf(stderr, "poll: pier_loop_free: %s\n", pier_strerror(rc));
    failures++;
  }
  int ok = failures == 0 && (!selftest || echoes == NCLIENTS);
  if (selftest)
    printf("poll: selftest %s (%d echoes, %d pier_poll calls)\n",
           ok ? "ok" : "FAILED", echoes, polls);
  return ok ? 0 : 1;
}
