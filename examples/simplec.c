/*
 * examples/simplec.c - the "simplec" client of the Winsock samples: connect,
 * send, receive the echo, all with blocking calls.
 *
 * What it shows
 *   - Blocking calls (cb == NULL): pier_connect, pier_send and pier_recv
 *     return when done, with the status a callback would have had and the
 *     results (op.bytes) in the pier_op.  No loop has to run for them.
 *   - PIER_MSG_WAITALL: the receive returns only once the whole echo is
 *     here, however TCP splits it on the way.
 *   - A graceful end: pier_shutdown(PIER_SHUT_WR) tells the server "no more
 *     from me"; its receive then sees the end of the stream.
 *
 * How to run it
 *   simplec [-p port] [-n count] [-l length]
 *       connect to 127.0.0.1:port (default 5001, where examples/simple
 *       listens), send count messages (default 5) of length bytes (default
 *       64) and check each echo
 *   simplec --selftest
 *       the same against a small echo server on a thread of this process
 *   PIER_BACKEND=name picks the provider.
 *
 * Expected output of --selftest (ports vary):
 *   simplec: pier 0.1.0 on provider libevent, selftest server on port 41813
 *   simplec: connected to 127.0.0.1:41813
 *   simplec: 5 messages of 64 bytes echoed and verified
 *   simplec: selftest server echoed 320 bytes
 *   simplec: selftest ok
 * and exit status 0 (1 on any failure, with pier_strerror's text).
 *
 * Build in the tree (make examples/simplec) or against an installed pier:
 *   cc simplec.c $(pkg-config --cflags --libs pier) -lpthread -o simplec
 */
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

#define MAX_LEN 65536
#define WATCHDOG_MS 20000 /* the selftest must be done by then */

static struct sockaddr_in loopback(unsigned port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((unsigned short)port);
  return sin;
}

/* ------------------------------------------------------------------ */
/* the client                                                          */
/* ------------------------------------------------------------------ */

/*
 * Connect to 127.0.0.1:port, send count messages of len bytes, verify each
 * echo, shut down and close.  Returns 0 or the first PIER_E* error.
 */
static int run_client(pier_loop *loop, unsigned port, int count, size_t len) {
  static char out[MAX_LEN], back[MAX_LEN];
  struct sockaddr_in server = loopback(port);
  pier_socket *s;
  pier_op op = {0};
  int rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s);
  if (rc != 0) {
    fprintf(stderr, "simplec: pier_socket_open: %s\n", pier_strerror(rc));
    return rc;
  }
  rc = pier_connect(s, &op, (struct sockaddr *)&server, sizeof server, NULL,
                    NULL, NULL);
  if (rc != 0) {
    fprintf(stderr, "simplec: pier_connect to 127.0.0.1:%u: %s\n", port,
            pier_strerror(rc));
  } else {
    printf("simplec: connected to 127.0.0.1:%u\n", port);
  }

  for (int i = 0; rc == 0 && i < count; i++) {
    for (size_t k = 0; k < len; k++) out[k] = (char)('a' + (i + k) % 26);
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
  if (rc == 0)
    printf("simplec: %d messages of %zu bytes echoed and verified\n", count,
           len);

  /* "No more from me": the server's receive sees the end of the stream. */
  if (rc == 0 && (rc = pier_shutdown(s, PIER_SHUT_WR)) != 0)
    fprintf(stderr, "simplec: pier_shutdown: %s\n", pier_strerror(rc));
  int crc = pier_close(s, NULL); /* freed when the loop next runs */
  if (crc != 0) {
    fprintf(stderr, "simplec: pier_close: %s\n", pier_strerror(crc));
    if (rc == 0) rc = crc;
  }
  return rc;
}

/* ------------------------------------------------------------------ */
/* the selftest's server: one blocking echo on a thread                */
/* ------------------------------------------------------------------ */

struct server {
  pier_socket *listener;
  size_t bytes;
  int rc;
};

THREAD_FN(echo_server) {
  struct server *sv = arg;
  static char buf[MAX_LEN];
  pier_op op = {0};
  int rc = pier_accept(sv->listener, &op, NULL, NULL, NULL);
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
  if (rc != 0)
    fprintf(stderr, "simplec: server: %s\n", pier_strerror(rc));
  int crc = pier_close(s, NULL);
  if (rc == 0) rc = crc;
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

/* Listen on 127.0.0.1:0 and serve one client on a thread. */
static int selftest(pier_loop *loop, int count, size_t len) {
  static struct server sv;
  struct sockaddr_in addr = loopback(0);
  struct sockaddr_storage ss;
  size_t sslen = sizeof ss;
  thread_t server, dog;
  int rc = pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &sv.listener);
  if (rc == 0) rc = pier_bind(sv.listener, (struct sockaddr *)&addr, sizeof addr);
  if (rc == 0) rc = pier_listen(sv.listener, 0);
  if (rc == 0) rc = pier_getsockname(sv.listener, &ss, &sslen);
  if (rc != 0) {
    fprintf(stderr, "simplec: selftest listener: %s\n", pier_strerror(rc));
    if (sv.listener) pier_close(sv.listener, NULL);
    return rc;
  }
  unsigned port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  printf("simplec: pier %s on provider %s, selftest server on port %u\n",
         pier_version_string(), pier_loop_backend(loop), port);
  if (thread_start(&dog, watchdog, NULL) != 0 ||
      thread_start(&server, echo_server, &sv) != 0) {
    fprintf(stderr, "simplec: cannot start a thread\n");
    pier_close(sv.listener, NULL);
    return PIER_ENOMEM;
  }
  rc = run_client(loop, port, count, len);
  thread_join(server);
  printf("simplec: selftest server echoed %zu bytes\n", sv.bytes);
  if (rc == 0) rc = sv.rc;
  if (rc == 0 && sv.bytes != (size_t)count * len) rc = PIER_EPROTO;
  int crc = pier_close(sv.listener, NULL);
  if (rc == 0) rc = crc;
  return rc;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr, "usage: simplec [-p port] [-n count] [-l length] | "
                  "simplec --selftest\n");
  exit(2);
}

int main(int argc, char **argv) {
  unsigned port = 5001;
  int count = 5, test = 0, rc;
  long len = 64;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--selftest") == 0) test = 1;
    else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) port = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) count = atoi(argv[++i]);
    else if (strcmp(argv[i], "-l") == 0 && i + 1 < argc) len = atol(argv[++i]);
    else usage();
  }
  if (len < 1 || len > MAX_LEN || count < 0) usage();
  setvbuf(stdout, NULL, _IOLBF, 0);

  /* Several threads on the loop: every pier call may then come from any
     thread (the selftest's server runs on one of its own). */
  pier_loop_options opts = {sizeof opts, NULL, 0, 2};
  pier_loop *loop;
  if ((rc = pier_loop_new(&opts, &loop)) != 0) {
    fprintf(stderr, "simplec: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  if (test)
    rc = selftest(loop, count, (size_t)len);
  else
    rc = run_client(loop, port, count, (size_t)len);

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
