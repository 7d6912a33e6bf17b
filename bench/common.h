/*
 * bench/common.h - what the four echo benchmarks share: the workload
 * parameters, the process layout, the client's flow control and clock,
 * and the memory measurement of idle connections.
 *
 * Every bench-IMPL program (epoll, libevent, libuv, pier) is one echo
 * server and one echo client written idiomatically for its library, plus
 * this driver.  bench_main() forks: the child runs the server, the parent
 * the client, each with its own loop on its own core (the machine has two),
 * both in the library under test, all traffic on 127.0.0.1.  The parent
 * prints one "result ..." line (echo workloads) or the child one "memory
 * ..." line (idle); bench/report.c turns many such lines into the table.
 *
 * Section map
 *   1. parameters and the implementation table
 *   2. the client's flow: what to send next, what came back
 *   3. the server side: ready, connection counts, idle measurement
 *   4. counting allocators (pier_set_allocator, uv_replace_allocator,
 *      event_set_mem_functions all take these)
 *   5. small helpers
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

/* ------------------------------------------------------------------ */
/* 1. parameters and the implementation table                          */
/* ------------------------------------------------------------------ */

/* The largest message, and the size of every read buffer (server and
   client), so that one read can always take a whole message. */
#define BENCH_BUF_SIZE (64 * 1024)
/* Messages one connection may have in flight (window / size). */
#define BENCH_MAX_DEPTH 64

typedef struct bench_params {
  const char *workload; /* a name for the report: throughput, latency, ... */
  int idle;             /* 1: the idle-memory workload, no traffic */
  int conns;            /* connections, all from one client loop */
  size_t size;          /* bytes per message */
  size_t window;        /* bytes one connection may have unanswered */
  double seconds;       /* measured time, after the warm-up */
  double warmup;        /* seconds of traffic not counted */
} bench_params;

/* What each bench-IMPL.c provides. */
typedef struct bench_impl {
  const char *name;
  /* Install counting allocators into the library (idle workload only, in
     the server process, before the library allocates anything). */
  void (*count_allocs)(void);
  /* Listen on 127.0.0.1:0, call bench_server_ready(), then serve p->conns
     connections (echo them, or in idle mode keep a read pending on each
     and call bench_idle_measure() once all are accepted) until every one
     has been closed by the client.  Returns 0 on success. */
  int (*serve)(const bench_params *p);
  /* Open p->conns connections to 127.0.0.1:port and run the echo flow on
     each until bench_client_stop(), then close them.  0 on success. */
  int (*client)(const bench_params *p, unsigned port);
  /* Bytes the application must own per idle connection for this API (its
     per-connection struct, as the server allocates it in idle mode). */
  size_t app_conn_size;
} bench_impl;

/* main() of every bench-IMPL program. */
int bench_main(int argc, char **argv, const bench_impl *impl);

/* Set by an implementation that can say more about itself, e.g. pier's
   provider; printed with the results ("-" otherwise). */
extern const char *bench_variant;

/* The bytes every client sends (contents do not matter to an echo). */
extern const char bench_payload[BENCH_BUF_SIZE];

/* ------------------------------------------------------------------ */
/* 2. the client's flow                                                */
/* ------------------------------------------------------------------ */

/* One client connection's accounting; embed it in the connection. */
typedef struct bench_flow {
  uint64_t sent;      /* bytes handed to the library to send */
  uint64_t received;  /* bytes of echo received */
  uint64_t stamp[BENCH_MAX_DEPTH]; /* when each message in flight was sent */
} bench_flow;

/*
 * bench_flow_next - call whenever no send is in progress on the
 * connection: returns the bytes to send now (one message from
 * bench_payload) and notes its send time, or 0 when the window is full or
 * the run is over.  The caller sends exactly that many bytes.
 */
size_t bench_flow_next(bench_flow *f);

/* bench_flow_received - n bytes of echo arrived on this connection. */
void bench_flow_received(bench_flow *f, size_t n);

/* bench_client_ms - milliseconds from the client's start to its end:
   start a library timer with this and call bench_client_stop() from it. */
uint64_t bench_client_ms(void);

/* bench_client_stop - the measured time is over: note the end, and make
   bench_flow_next() return 0 from now on.  The caller closes everything. */
void bench_client_stop(void);

/* bench_client_stopped - 1 once bench_client_stop() has run. */
int bench_client_stopped(void);

/* ------------------------------------------------------------------ */
/* 3. the server side                                                  */
/* ------------------------------------------------------------------ */

/* bench_server_ready - the listener is up on port: tell the client, and
   take the idle workload's "before" memory snapshot. */
void bench_server_ready(unsigned port);

/* bench_idle_measure - every idle connection is accepted with a read
   pending: take the "after" snapshot, print the memory line, and let the
   client close its connections. */
void bench_idle_measure(void);

/* ------------------------------------------------------------------ */
/* 4. counting allocators                                              */
/* ------------------------------------------------------------------ */

/* Two counters: "lib" (the library under test) and "sub" (for pier: the
   libevent its provider runs on).  Live bytes as requested, no overhead. */
void *bench_lib_malloc(size_t n);
void *bench_lib_calloc(size_t count, size_t n);
void *bench_lib_realloc(void *p, size_t n);
void bench_lib_free(void *p);
void *bench_sub_malloc(size_t n);
void *bench_sub_calloc(size_t count, size_t n);
void *bench_sub_realloc(void *p, size_t n);
void bench_sub_free(void *p);

/* How the library's own bytes were counted, for the memory line. */
extern const char *bench_lib_how;
/* 1 if the "sub" counter is in use (pier: libevent underneath). */
extern int bench_sub_used;

/* ------------------------------------------------------------------ */
/* 5. small helpers                                                    */
/* ------------------------------------------------------------------ */

/* 127.0.0.1:port */
struct sockaddr_in bench_loopback(unsigned port);

/* Print "bench-NAME: message" to stderr and exit(1). */
void bench_die(const char *fmt, ...);

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

#endif /* BENCH_COMMON_H */
