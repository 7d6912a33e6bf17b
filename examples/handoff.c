/* SPDX-License-Identifier: MIT */
/*
 * examples/handoff.c - the WSADuplicateSocket sample: a server process
 * accepts connections and hands each one to a worker process, which serves
 * it (echo) while the server goes on accepting.
 *
 * What it shows
 *   - pier_share_send in the server: the accepted socket goes to the
 *     worker over a channel the two processes share, and the call returns
 *     once the worker has its copy; the server then closes its own copy
 *     (pier_close) - the connection lives on in the worker.
 *   - pier_share_recv in the worker: the same socket, now a pier socket on
 *     the worker's own loop, served with overlapped pier_recv / pier_send
 *     until the client closes its side.
 *   - The channel, made before the worker exists:
 *       POSIX    socketpair(AF_UNIX, SOCK_STREAM) and fork(); the worker is
 *                the forked child, which keeps one end (pier passes the
 *                descriptor as SCM_RIGHTS).  No exec is needed here: the
 *                fork happens before either process makes any pier object.
 *       Windows  the server listens on a loopback TCP port, starts itself
 *                again with CreateProcessW(`handoff --worker PORT`), and the
 *                worker connects back (pier passes WSADuplicateSocketW's
 *                WSAPROTOCOL_INFOW).  A real server should check that the
 *                process that connected is its worker; a share made for one
 *                process id is useless to any other.
 *   - The worker waits for a share and serves its connections on one
 *     thread: a timer looks at the channel every TICK_MS and takes a share
 *     when one is there, so a slow client never keeps the worker from the
 *     next hand-off.  When the server closes the channel
 *     (pier_share_recv: PIER_ECONNRESET) the worker takes no more, serves
 *     what it has and exits.
 *   - The server's process reaps its worker, within a deadline, and kills
 *     it when late.
 *   A listener can be handed over the same way; then both processes accept
 *   on it, and each connection is taken by one of them.
 *
 * How to run it
 *   handoff [-p port]    serve on 127.0.0.1:port (default 5010) until
 *                        killed, one worker process; try `nc 127.0.0.1 5010`
 *   handoff --selftest   the same on a free port, plus NCLIENTS clients on
 *                        the server's loop: each sends PATTERN bytes, shuts
 *                        down its side and checks the worker's echo byte for
 *                        byte; then the server closes the channel and waits
 *                        for the worker to exit 0.  Bounded by DEADLINE_MS.
 *   handoff --help       the options, their ranges and defaults
 *   PIER_BACKEND=name picks the provider (both processes use it).
 *
 * Expected output of --selftest (ports and ids vary; the two processes'
 * lines interleave):
 *   handoff: worker process 12346 started
 *   handoff: pier 0.1.0 on provider libevent, listening on 127.0.0.1:40213
 *   handoff worker: connection 1 received, provider libevent
 *   handoff: connection 1 handed to the worker
 *   ...
 *   handoff worker: connection 1 done, 8192 bytes echoed
 *   handoff: client 1: 8192 bytes echoed by the worker
 *   ...
 *   handoff worker: the server closed the channel, 3 connections served
 *   handoff: worker exited with status 0
 *   handoff: selftest ok
 * and exit status 0 (1 on any failure, with pier_strerror's text; 2 for a
 * bad command line, with a message naming the argument).
 * On Windows the worker writes to the server's standard output and error.
 *
 * Build in the tree (make examples/handoff) or against an installed pier:
 *   cc handoff.c $(pkg-config --cflags --libs pier) -o handoff
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L /* fork, waitpid, socketpair with -std=c99 */
#endif
#include <pier.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#  include <windows.h>
#else
#  include <signal.h>
#  include <sys/select.h>
#  include <sys/wait.h>
#  include <time.h>
#  include <unistd.h>
#endif

#define NCLIENTS 3           /* selftest: connections handed over */
#define DEFAULT_PORT 5010
#define PATTERN 8192         /* selftest: bytes each client sends */
#define BUFSIZE 4096         /* the worker's receive buffer */
#define SHARE_MS 5000        /* the most a hand-off may take */
#define TICK_MS 10           /* the worker looks at its channel this often */
#define DEADLINE_MS 20000    /* selftest: the whole run, either process */
#define REAP_MS 5000         /* the worker's exit after the channel closes */

/* ------------------------------------------------------------------ */
/* the channel and the worker process, per OS                          */
/* ------------------------------------------------------------------ */

/* The worker, as the server knows it. */
struct worker {
  unsigned long pid;        /* what pier_share_send needs */
  pier_os_socket channel;   /* the server's end */
#ifdef _WIN32
  HANDLE process;
#endif
};

/* 1 if the channel has something to read (a share, or its end) now. */
static int channel_readable(pier_os_socket ch) {
  fd_set r;
  struct timeval tv = {0, 0};
  FD_ZERO(&r);
  FD_SET(ch, &r);
  return select((int)ch + 1, &r, NULL, NULL, &tv) > 0; /* Windows ignores nfds */
}

static void channel_close(pier_os_socket ch) {
#ifdef _WIN32
  closesocket(ch);
#else
  close(ch);
#endif
}

static int worker_main(pier_os_socket channel, int selftest);

#ifdef _WIN32
static struct sockaddr_in loopback_addr(unsigned port);

/* Start `handoff --worker PORT [--selftest]` and accept its connection on
   a loopback port: 0, or -1 with a message. */
static int worker_start(struct worker *w, int selftest) {
  WSADATA wsa;
  if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
    fprintf(stderr, "handoff: WSAStartup failed\n");
    return -1;
  }
  /* Not inheritable: the worker inherits only stdout and stderr. */
  SOCKET l = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                        WSA_FLAG_NO_HANDLE_INHERIT);
  struct sockaddr_in a = loopback_addr(0);
  int alen = sizeof a;
  if (l == INVALID_SOCKET || bind(l, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(l, 1) != 0 || getsockname(l, (struct sockaddr *)&a, &alen) != 0) {
    fprintf(stderr, "handoff: channel listener: error %d\n", WSAGetLastError());
    if (l != INVALID_SOCKET) closesocket(l);
    return -1;
  }
  wchar_t exe[MAX_PATH], cmd[MAX_PATH + 64];
  DWORD n = GetModuleFileNameW(NULL, exe, MAX_PATH);
  if (n == 0 || n >= MAX_PATH) {
    fprintf(stderr, "handoff: GetModuleFileNameW failed\n");
    closesocket(l);
    return -1;
  }
  swprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" --worker %u%ls", exe,
           (unsigned)ntohs(a.sin_port), selftest ? L" --selftest" : L"");
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.hStdOutput = GetStdHandle(STD_OUTPUT_HANDLE);
  si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  SetHandleInformation(si.hStdOutput, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
  SetHandleInformation(si.hStdError, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
  fflush(stdout);
  if (!CreateProcessW(exe, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)) {
    fprintf(stderr, "handoff: CreateProcessW failed: %lu\n",
            (unsigned long)GetLastError());
    closesocket(l);
    return -1;
  }
  CloseHandle(pi.hThread);
  w->process = pi.hProcess;
  w->pid = pi.dwProcessId;
  /* The worker connects back; wait for it at most SHARE_MS. */
  fd_set r;
  struct timeval tv = {SHARE_MS / 1000, 0};
  FD_ZERO(&r);
  FD_SET(l, &r);
  w->channel = select(0, &r, NULL, NULL, &tv) > 0 ? accept(l, NULL, NULL)
                                                   : INVALID_SOCKET;
  closesocket(l);
  if (w->channel == INVALID_SOCKET) {
    fprintf(stderr, "handoff: the worker never connected\n");
    return -1; /* main reaps (kills) the worker */
  }
  return 0;
}

/* The worker's side: connect to the server's port and serve. */
static int worker_run(unsigned port, int selftest) {
  WSADATA wsa;
  if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) return 1;
  struct sockaddr_in a = loopback_addr(port);
  SOCKET ch = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (ch == INVALID_SOCKET || connect(ch, (struct sockaddr *)&a, sizeof a) != 0) {
    fprintf(stderr, "handoff worker: channel: error %d\n", WSAGetLastError());
    return 1;
  }
  int rc = worker_main(ch, selftest);
  WSACleanup();
  return rc;
}

/* Wait up to ms for the worker to exit, then kill it: its exit status,
   or -1 if it had to be killed. */
static int worker_reap(struct worker *w, int ms) {
  int code = -1;
  if (w->process == NULL) return code;
  if (WaitForSingleObject(w->process, (DWORD)ms) == WAIT_OBJECT_0) {
    DWORD st = 1;
    GetExitCodeProcess(w->process, &st);
    code = (int)st;
  } else {
    TerminateProcess(w->process, 9);
    WaitForSingleObject(w->process, INFINITE);
  }
  CloseHandle(w->process);
  w->process = NULL;
  WSACleanup();
  return code;
}
#else
/* fork a worker with one end of a socketpair: 0 in the server, -1 with a
   message; the worker itself never returns from here. */
static int worker_start(struct worker *w, int selftest) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    perror("handoff: socketpair");
    return -1;
  }
  fflush(stdout); /* or the worker would print it again */
  pid_t pid = fork();
  if (pid < 0) {
    perror("handoff: fork");
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  if (pid == 0) { /* the worker */
    close(sv[0]);
    exit(worker_main(sv[1], selftest));
  }
  close(sv[1]); /* the worker's end: when it closes, the channel ends */
  w->pid = (unsigned long)pid;
  w->channel = sv[0];
  return 0;
}

static int worker_reap(struct worker *w, int ms) {
  int st = 0, code = -1;
  pid_t r;
  if (w->pid == 0) return code;
  struct timespec tick = {0, 10 * 1000000L};
  for (int waited = 0;
       (r = waitpid((pid_t)w->pid, &st, WNOHANG)) == 0 && waited < ms;
       waited += 10)
    nanosleep(&tick, NULL);
  if (r == 0) {
    kill((pid_t)w->pid, SIGKILL);
    waitpid((pid_t)w->pid, &st, 0);
  } else if (r > 0) {
    code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  w->pid = 0;
  return code;
}
#endif

static struct sockaddr_in loopback_addr(unsigned port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((unsigned short)port);
  return sin;
}

/* ------------------------------------------------------------------ */
/* the worker: take shares, echo each connection                       */
/* ------------------------------------------------------------------ */

struct conn {
  int id;
  pier_op recv_op, send_op; /* one receive, then its echo, in turn */
  char buf[BUFSIZE];
  size_t len, sent;         /* of buf, to echo */
  size_t bytes;             /* echoed in all */
};

static pier_loop *wloop;
static pier_os_socket wchannel = PIER_INVALID_SOCKET;
static pier_timer wtick, wdeadline;
static int wtaken, wlive, wfailures, wselftest;

static void wconn_recv(pier_socket *s);

static void wconn_closed(pier_socket *s) {
  struct conn *c = pier_socket_get_data(s);
  printf("handoff worker: connection %d done, %zu bytes echoed\n", c->id,
         c->bytes);
  free(c);
  /* Nothing more will come: let the loop run out. */
  if (--wlive == 0 && wchannel == PIER_INVALID_SOCKET && wselftest)
    pier_timer_stop(&wdeadline);
}

static void wconn_close(pier_socket *s) {
  int rc = pier_close(s, wconn_closed);
  if (rc != 0) {
    fprintf(stderr, "handoff worker: pier_close: %s\n", pier_strerror(rc));
    wfailures++;
  }
}

static void wconn_send(pier_socket *s);

static void wconn_on_sent(pier_op *op, int status) {
  pier_socket *s = op->data;
  struct conn *c = pier_socket_get_data(s);
  if (status != 0) {
    fprintf(stderr, "handoff worker: send: %s\n", pier_strerror(status));
    wfailures++;
    wconn_close(s);
    return;
  }
  c->sent += op->bytes;
  c->bytes += op->bytes;
  if (c->sent < c->len) wconn_send(s); /* the rest */
  else wconn_recv(s);
}

static void wconn_send(pier_socket *s) {
  struct conn *c = pier_socket_get_data(s);
  pier_buf out = pier_buf_init(c->buf + c->sent, c->len - c->sent);
  int rc = pier_send(s, &c->send_op, &out, 1, 0, wconn_on_sent);
  if (rc != 0) {
    fprintf(stderr, "handoff worker: pier_send: %s\n", pier_strerror(rc));
    wfailures++;
    wconn_close(s);
  }
}

static void wconn_on_recv(pier_op *op, int status) {
  pier_socket *s = op->data;
  struct conn *c = pier_socket_get_data(s);
  if (status != 0 || op->bytes == 0) { /* error, or the client is done */
    if (status != 0 && status != PIER_ECONNRESET) {
      fprintf(stderr, "handoff worker: recv: %s\n", pier_strerror(status));
      wfailures++;
    }
    wconn_close(s);
    return;
  }
  c->len = op->bytes;
  c->sent = 0;
  wconn_send(s);
}

static void wconn_recv(pier_socket *s) {
  struct conn *c = pier_socket_get_data(s);
  pier_buf in = pier_buf_init(c->buf, sizeof c->buf);
  int rc = pier_recv(s, &c->recv_op, &in, 1, 0, wconn_on_recv);
  if (rc != 0) {
    fprintf(stderr, "handoff worker: pier_recv: %s\n", pier_strerror(rc));
    wfailures++;
    wconn_close(s);
  }
}

/* The channel is done: take no more shares. */
static void wchannel_end(void) {
  pier_timer_stop(&wtick);
  channel_close(wchannel);
  wchannel = PIER_INVALID_SOCKET;
  if (wlive == 0 && wselftest) pier_timer_stop(&wdeadline);
}

/* Every TICK_MS: a share waiting on the channel becomes a connection. */
static void wtick_cb(pier_timer *t) {
  (void)t;
  if (!channel_readable(wchannel)) return;
  pier_socket *s;
  int rc = pier_share_recv(wloop, wchannel, 0, SHARE_MS, &s);
  if (rc == PIER_ECONNRESET) {
    printf("handoff worker: the server closed the channel, %d connections "
           "served\n", wtaken);
    wchannel_end();
    return;
  }
  if (rc != 0) {
    /* After a timeout the channel is out of step: give up on it. */
    fprintf(stderr, "handoff worker: pier_share_recv: %s\n", pier_strerror(rc));
    wfailures++;
    wchannel_end();
    return;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    fprintf(stderr, "handoff worker: out of memory\n");
    wfailures++;
    pier_close(s, NULL);
    return;
  }
  c->id = ++wtaken;
  c->recv_op.data = c->send_op.data = s;
  pier_socket_set_data(s, c);
  wlive++;
  printf("handoff worker: connection %d received, provider %s\n", c->id,
         pier_loop_backend(wloop));
  wconn_recv(s);
}

static void wdeadline_cb(pier_timer *t) {
  (void)t;
  fprintf(stderr, "handoff worker: not done in %d ms\n", DEADLINE_MS);
  wfailures++;
  pier_loop_stop(wloop);
}

/* The worker process: serve until the server closes the channel.
   Returns the exit status. */
static int worker_main(pier_os_socket channel, int selftest) {
  int rc;
  setvbuf(stdout, NULL, _IOLBF, 0);
  wchannel = channel;
  wselftest = selftest;
  if ((rc = pier_loop_new(NULL, &wloop)) != 0) {
    fprintf(stderr, "handoff worker: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  if ((rc = pier_timer_init(wloop, &wtick)) == 0)
    rc = pier_timer_start(&wtick, TICK_MS, TICK_MS, wtick_cb);
  if (rc == 0 && selftest && (rc = pier_timer_init(wloop, &wdeadline)) == 0)
    rc = pier_timer_start(&wdeadline, DEADLINE_MS, 0, wdeadline_cb);
  if (rc != 0) {
    fprintf(stderr, "handoff worker: timer: %s\n", pier_strerror(rc));
    return 1;
  }
  rc = pier_loop_run(wloop, PIER_RUN_DEFAULT);
  if (rc < 0) {
    fprintf(stderr, "handoff worker: pier_loop_run: %s\n", pier_strerror(rc));
    wfailures++;
  }
  if ((rc = pier_loop_free(wloop)) != 0) {
    fprintf(stderr, "handoff worker: pier_loop_free: %s\n", pier_strerror(rc));
    wfailures++;
  }
  return wfailures ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* the server: accept, hand over, close its copy                       */
/* ------------------------------------------------------------------ */

static pier_loop *loop;
static pier_socket *listener;
static pier_op accept_op;
static struct worker worker;
static int handed, failures, stopping;
static pier_timer deadline;

/* Stop serving: close the listener and the channel (the worker then
   finishes its connections and exits). */
static void server_stop(void) {
  if (stopping) return;
  stopping = 1;
  int rc = pier_close(listener, NULL);
  if (rc != 0) {
    fprintf(stderr, "handoff: pier_close: %s\n", pier_strerror(rc));
    failures++;
  }
  channel_close(worker.channel);
  worker.channel = PIER_INVALID_SOCKET;
}

static void start_accept(void);

static void on_accept(pier_op *op, int status) {
  if (status == PIER_ECANCELED && stopping) return;
  if (status != 0) {
    fprintf(stderr, "handoff: accept: %s\n", pier_strerror(status));
    failures++;
    return;
  }
  /* Blocks this thread until the worker has its copy: a few ms, since
     the worker looks at the channel every TICK_MS. */
  int rc = pier_share_send(worker.channel, op->accepted, worker.pid, SHARE_MS);
  if (rc == 0) {
    printf("handoff: connection %d handed to the worker\n", ++handed);
  } else {
    fprintf(stderr, "handoff: pier_share_send: %s\n", pier_strerror(rc));
    failures++;
  }
  /* Ours is a copy now (or the hand-off failed and the client is dropped). */
  int crc = pier_close(op->accepted, NULL);
  if (crc != 0) {
    fprintf(stderr, "handoff: pier_close: %s\n", pier_strerror(crc));
    failures++;
  }
  if (rc == PIER_ETIMEDOUT || rc == PIER_ECONNRESET) {
    server_stop(); /* the channel is out of step, or the worker is gone */
    return;
  }
  start_accept();
}

static void start_accept(void) {
  int rc = pier_accept(listener, &accept_op, NULL, NULL, on_accept);
  if (rc != 0) {
    fprintf(stderr, "handoff: pier_accept: %s\n", pier_strerror(rc));
    failures++;
  }
}

/* ------------------------------------------------------------------ */
/* the selftest's clients: send a pattern, check the worker's echo     */
/* ------------------------------------------------------------------ */

struct client {
  int id;
  pier_socket *sock;
  pier_op send_op, recv_op;
  unsigned char out[PATTERN], in[PATTERN + 1]; /* +1: catches extra bytes */
  size_t sent, received;
  int done;
};

static struct client clients[NCLIENTS];
static int clients_done;

static void client_end(struct client *k, int status, const char *what) {
  if (k->done) return;
  k->done = 1;
  if (status != 0) {
    fprintf(stderr, "handoff: client %d: %s: %s\n", k->id, what,
            pier_strerror(status));
    failures++;
  } else if (k->received != PATTERN || memcmp(k->in, k->out, PATTERN) != 0) {
    fprintf(stderr, "handoff: client %d: the echo differs (%zu bytes back)\n",
            k->id, k->received);
    failures++;
  } else {
    printf("handoff: client %d: %d bytes echoed by the worker\n", k->id,
           PATTERN);
  }
  int rc = pier_close(k->sock, NULL);
  if (rc != 0) fprintf(stderr, "handoff: pier_close: %s\n", pier_strerror(rc));
  if (++clients_done == NCLIENTS) {
    server_stop();
    pier_timer_stop(&deadline);
  }
}

static void client_send_next(struct client *k);

static void on_client_sent(pier_op *op, int status) {
  struct client *k = op->data;
  if (k->done) return;
  if (status != 0) { client_end(k, status, "send"); return; }
  k->sent += op->bytes;
  client_send_next(k);
}

static void client_send_next(struct client *k) {
  int rc;
  if (k->sent == PATTERN) {
    /* All sent: half-close, so the worker sees the end of the stream. */
    if ((rc = pier_shutdown(k->sock, PIER_SHUT_WR)) != 0)
      client_end(k, rc, "pier_shutdown");
    return;
  }
  pier_buf out = pier_buf_init(k->out + k->sent, PATTERN - k->sent);
  if ((rc = pier_send(k->sock, &k->send_op, &out, 1, 0, on_client_sent)) != 0)
    client_end(k, rc, "pier_send");
}

static void client_recv_next(struct client *k);

static void on_client_recv(pier_op *op, int status) {
  struct client *k = op->data;
  if (k->done) return;
  if (status != 0) { client_end(k, status, "recv"); return; }
  if (op->bytes == 0) { client_end(k, 0, "end of stream"); return; }
  k->received += op->bytes;
  client_recv_next(k);
}

static void client_recv_next(struct client *k) {
  if (k->received > PATTERN) { client_end(k, 0, "echo"); return; } /* too much */
  pier_buf in = pier_buf_init(k->in + k->received, PATTERN + 1 - k->received);
  int rc = pier_recv(k->sock, &k->recv_op, &in, 1, 0, on_client_recv);
  if (rc != 0) client_end(k, rc, "pier_recv");
}

static void on_client_connected(pier_op *op, int status) {
  struct client *k = op->data;
  if (status != 0) { client_end(k, status, "connect"); return; }
  client_send_next(k);
  client_recv_next(k); /* until the worker closes: then the echo is whole */
}

static void on_deadline(pier_timer *t) {
  (void)t;
  fprintf(stderr, "handoff: selftest did not finish in %d ms\n", DEADLINE_MS);
  failures++;
  pier_loop_stop(loop);
}

static int start_clients(unsigned port) {
  struct sockaddr_in to = loopback_addr(port);
  for (int i = 0; i < NCLIENTS; i++) {
    struct client *k = &clients[i];
    k->id = i + 1;
    for (size_t j = 0; j < PATTERN; j++)
      k->out[j] = (unsigned char)((j * 131 + j / 256 + (size_t)k->id * 17) & 0xff);
    k->send_op.data = k->recv_op.data = k;
    int rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &k->sock);
    if (rc == 0)
      rc = pier_connect(k->sock, &k->send_op, (struct sockaddr *)&to, sizeof to,
                        NULL, NULL, on_client_connected);
    if (rc != 0) {
      fprintf(stderr, "handoff: client %d: %s\n", k->id, pier_strerror(rc));
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
  fprintf(stderr, "handoff: %s: %s (handoff --help lists the options)\n", arg,
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
    fprintf(stderr, "handoff: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: handoff [-p PORT]\n"
    "       handoff --selftest | --help\n"
    "Echo server on 127.0.0.1 that hands every accepted connection to a "
    "worker\n"
    "process (pier_share_send / pier_share_recv), until killed.\n"
    "  -p PORT        listen on PORT, 0 to 65535 (0: any free port); "
    "default %d\n"
    "  --selftest     the same on a free port with %d clients in this "
    "process\n"
    "  --worker PORT  (Windows, internal) be the worker of the server "
    "whose channel\n"
    "                 listens on 127.0.0.1:PORT, 1 to 65535\n"
    "  -h, --help     this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here); both processes use "
    "it.\n",
    DEFAULT_PORT, NCLIENTS);
}

int main(int argc, char **argv) {
  unsigned port = DEFAULT_PORT, worker_port = 0;
  int selftest = 0, rc;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(a, "--selftest") == 0) selftest = 1;
    else if (strcmp(a, "-p") == 0)
      port = (unsigned)number(a, value(argc, argv, &i), 0, 65535);
    else if (strcmp(a, "--worker") == 0)
      worker_port = (unsigned)number(a, value(argc, argv, &i), 1, 65535);
    else usage_error(a, "unknown option");
  }
#ifdef _WIN32
  if (worker_port != 0) return worker_run(worker_port, selftest);
#else
  if (worker_port != 0) usage_error("--worker", "only on Windows");
#endif
  if (selftest) port = 0;
  setvbuf(stdout, NULL, _IOLBF, 0);

  /* The worker first: on POSIX the fork comes before any pier object. */
  worker.channel = PIER_INVALID_SOCKET;
  if (worker_start(&worker, selftest) != 0) {
    worker_reap(&worker, 0);
    return 1;
  }
  printf("handoff: worker process %lu started\n", worker.pid);

  struct sockaddr_in addr = loopback_addr(port);
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  if ((rc = pier_loop_new(NULL, &loop)) == 0)
    rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &listener);
  if (rc == 0 && !selftest) rc = pier_setsockopt(listener, PIER_SO_REUSEADDR, 1);
  if (rc == 0) rc = pier_bind(listener, (struct sockaddr *)&addr, sizeof addr);
  if (rc == 0) rc = pier_listen(listener, 0);
  if (rc == 0) rc = pier_getsockname(listener, &ss, &len);
  if (rc != 0) {
    fprintf(stderr, "handoff: listener: %s\n", pier_strerror(rc));
    worker_reap(&worker, 0);
    return 1;
  }
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  printf("handoff: pier %s on provider %s, listening on 127.0.0.1:%u\n",
         pier_version_string(), pier_loop_backend(loop), port);
  start_accept();

  if (selftest) {
    if ((rc = pier_timer_init(loop, &deadline)) == 0)
      rc = pier_timer_start(&deadline, DEADLINE_MS, 0, on_deadline);
    if (rc == 0) rc = start_clients(port);
    if (rc != 0) {
      fprintf(stderr, "handoff: selftest setup: %s\n", pier_strerror(rc));
      worker_reap(&worker, 0);
      return 1;
    }
  }

  rc = pier_loop_run(loop, PIER_RUN_DEFAULT);
  if (rc < 0) {
    fprintf(stderr, "handoff: pier_loop_run: %s\n", pier_strerror(rc));
    failures++;
  }
  if (worker.channel != PIER_INVALID_SOCKET) channel_close(worker.channel);
  /* The worker exits once the channel is closed and its clients are done. */
  int code = worker_reap(&worker, failures ? 0 : REAP_MS);
  if (code == -1) fprintf(stderr, "handoff: worker killed\n");
  else printf("handoff: worker exited with status %d\n", code);
  if (code != 0) failures++;
  if ((rc = pier_loop_free(loop)) != 0) {
    fprintf(stderr, "handoff: pier_loop_free: %s\n", pier_strerror(rc));
    failures++;
  }
  if (selftest) printf("handoff: selftest %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
