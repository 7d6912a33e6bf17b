/*
 * bench/common.c - the driver and the measurements shared by every
 * bench-IMPL program (see common.h for the layout).
 *
 * Section map
 *   1. state, clock, helpers
 *   2. the client's flow and latency histogram
 *   3. the server side and the idle-memory measurement
 *   4. counting allocators
 *   5. the idle client (plain blocking sockets: it only has to connect)
 *   6. bench_main: arguments, fork, wait, the result line
 */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* 1. state, clock, helpers                                            */
/* ------------------------------------------------------------------ */

/* Latency histogram: 100 ns buckets up to 10 ms, then one overflow
   bucket.  100 ns is finer than loopback round trips (tens of us) vary. */
#define HIST_NS 100
#define HIST_BUCKETS 100000

const char bench_payload[BENCH_BUF_SIZE];
const char *bench_lib_how = "-";
const char *bench_variant = "-";
int bench_sub_used;

static struct {
  const bench_impl *impl;
  bench_params p;
  const char *metric;  /* primary figure, echoed for the report */
  int ctl[2];          /* server -> client: the port, then 'M' (idle) */
  /* client */
  uint64_t t_start, t_warm, t0, t1;
  int running, stopped;
  uint64_t total_bytes, total_rtts;    /* from the first byte on */
  uint64_t bytes0, rtts0;              /* totals when the window opened */
  uint64_t bytes1, rtts1;              /* ... and when it closed */
  uint32_t hist[HIST_BUCKETS + 1];
  /* server, idle workload */
  size_t heap0, rss0, lib0, sub0;
} g;

static struct {
  size_t live;
} lib_count, sub_count;

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_die(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "bench-%s: ", g.impl ? g.impl->name : "?");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

struct sockaddr_in bench_loopback(unsigned port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((unsigned short)port);
  return sin;
}

/* Bytes in use on the heap as glibc's malloc sees them: the chunks handed
   out, headers and rounding included - what memory really costs. */
static size_t heap_in_use(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
#else
  return 0;
#endif
}

/* Resident set size in bytes, from /proc/self/statm (0 where absent). */
static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (!f) return 0;
  if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
  fclose(f);
  return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static double cpu_seconds(int who) {
  struct rusage ru;
  getrusage(who, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ */
/* 2. the client's flow                                                */
/* ------------------------------------------------------------------ */

uint64_t bench_client_ms(void) {
  return (uint64_t)((g.p.warmup + g.p.seconds) * 1000.0 + 0.5);
}

void bench_client_stop(void) {
  if (g.stopped) return;
  g.stopped = 1;
  g.t1 = bench_now_ns();
  g.bytes1 = g.total_bytes;
  g.rtts1 = g.total_rtts;
}

int bench_client_stopped(void) { return g.stopped; }

size_t bench_flow_next(bench_flow *f) {
  size_t size = g.p.size;
  if (g.stopped || f->sent - f->received + size > g.p.window) return 0;
  f->stamp[(f->sent / size) % BENCH_MAX_DEPTH] = bench_now_ns();
  f->sent += size;
  return size;
}

void bench_flow_received(bench_flow *f, size_t n) {
  uint64_t size = g.p.size, now = bench_now_ns();
  uint64_t k = f->received / size; /* the oldest message in flight */
  f->received += n;
  uint64_t done = f->received / size; /* messages now complete */
  g.total_bytes += n;
  g.total_rtts += done - k;
  /* The window opens with the first echo after the warm-up, so TCP has
     grown its windows and every connection is up before counting.  That
     echo itself belongs to the warm-up. */
  if (!g.running && !g.stopped && now >= g.t_warm) {
    g.running = 1;
    g.t0 = now;
    g.bytes0 = g.total_bytes;
    g.rtts0 = g.total_rtts;
    return;
  }
  if (!g.running || g.stopped) return;
  for (; k < done; k++) {
    uint64_t b = (now - f->stamp[k % BENCH_MAX_DEPTH]) / HIST_NS;
    g.hist[b < HIST_BUCKETS ? b : HIST_BUCKETS]++;
  }
}

/* The q-quantile of the latency histogram, in microseconds. */
static double hist_quantile(double q) {
  uint64_t n = 0, seen = 0;
  for (size_t i = 0; i <= HIST_BUCKETS; i++) n += g.hist[i];
  if (n == 0) return 0;
  uint64_t want = (uint64_t)(q * (double)(n - 1)) + 1;
  for (size_t i = 0; i <= HIST_BUCKETS; i++) {
    seen += g.hist[i];
    if (seen >= want) return ((double)i + 0.5) * HIST_NS / 1000.0;
  }
  return (double)HIST_BUCKETS * HIST_NS / 1000.0;
}

/* ------------------------------------------------------------------ */
/* 3. the server side                                                  */
/* ------------------------------------------------------------------ */

void bench_server_ready(unsigned port) {
  char line[32];
  int n = snprintf(line, sizeof line, "%u\n", port);
  g.heap0 = heap_in_use();
  g.rss0 = rss_bytes();
  g.lib0 = lib_count.live;
  g.sub0 = sub_count.live;
  if (write(g.ctl[1], line, (size_t)n) != n) bench_die("ready: %s", strerror(errno));
}

void bench_idle_measure(void) {
  double n = g.p.conns;
  size_t heap = heap_in_use(), rss = rss_bytes();
  printf("memory impl=%s conns=%d lib=%.1f sub=%.1f app=%zu heap=%.1f "
         "rss=%.1f how=%s\n",
         g.impl->name, g.p.conns, ((double)lib_count.live - (double)g.lib0) / n,
         bench_sub_used ? ((double)sub_count.live - (double)g.sub0) / n : -1.0,
         g.impl->app_conn_size, ((double)heap - (double)g.heap0) / n,
         ((double)rss - (double)g.rss0) / n, bench_lib_how);
  fflush(stdout);
  if (write(g.ctl[1], "M", 1) != 1) bench_die("measured: %s", strerror(errno));
}

/* ------------------------------------------------------------------ */
/* 4. counting allocators                                              */
/* ------------------------------------------------------------------ */

/* Each block carries its requested size in a header as large as the most
   aligned type (C99 has no max_align_t), so the block after it keeps
   malloc's alignment. */
typedef union hdr { size_t size; long double ld; long long ll; void *p; } hdr;

#define COUNTING_ALLOCATOR(who, counter)                                    \
  void *bench_##who##_malloc(size_t n) {                                    \
    hdr *h = malloc(sizeof *h + n);                                         \
    if (!h) return NULL;                                                    \
    h->size = n;                                                            \
    counter.live += n;                                                      \
    return h + 1;                                                           \
  }                                                                         \
  void *bench_##who##_calloc(size_t count, size_t n) {                      \
    if (n && count > ((size_t)-1 - sizeof(hdr)) / n) return NULL;           \
    void *p = bench_##who##_malloc(count * n);                              \
    if (p) memset(p, 0, count * n);                                         \
    return p;                                                               \
  }                                                                         \
  void bench_##who##_free(void *p) {                                        \
    if (!p) return;                                                         \
    hdr *h = (hdr *)p - 1;                                                  \
    counter.live -= h->size;                                                \
    free(h);                                                                \
  }                                                                         \
  void *bench_##who##_realloc(void *p, size_t n) {                          \
    if (!p) return bench_##who##_malloc(n);                                 \
    hdr *h = (hdr *)p - 1;                                                  \
    size_t old = h->size;                                                   \
    hdr *nh = realloc(h, sizeof *nh + n);                                   \
    if (!nh) return NULL;                                                   \
    nh->size = n;                                                           \
    counter.live = counter.live - old + n;                                  \
    return nh + 1;                                                          \
  }

COUNTING_ALLOCATOR(lib, lib_count)
COUNTING_ALLOCATOR(sub, sub_count)

/* ------------------------------------------------------------------ */
/* 5. the idle client                                                  */
/* ------------------------------------------------------------------ */

/* Wait up to ms for one byte on fd; returns it, or -1. */
static int read_byte(int fd, int ms) {
  struct pollfd pfd = {fd, POLLIN, 0};
  char c;
  if (poll(&pfd, 1, ms) != 1 || read(fd, &c, 1) != 1) return -1;
  return c;
}

/* Connect p->conns plain sockets, hold them until the server has
   measured, close them.  The client side is not what is measured. */
static int idle_client(unsigned port) {
  int n = g.p.conns, rc = 0;
  int *fds = calloc((size_t)n, sizeof *fds);
  struct sockaddr_in sin = bench_loopback(port);
  if (!fds) bench_die("out of memory");
  for (int i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sin, sizeof sin) != 0)
      bench_die("idle connect %d: %s", i, strerror(errno));
  }
  if (read_byte(g.ctl[0], 20000) != 'M') {
    fprintf(stderr, "bench-%s: the server never measured\n", g.impl->name);
    rc = 1;
  }
  for (int i = 0; i < n; i++) close(fds[i]);
  free(fds);
  return rc;
}

/* ------------------------------------------------------------------ */
/* 6. bench_main                                                       */
/* ------------------------------------------------------------------ */

static void usage(const char *name) {
  fprintf(stderr,
          "usage: bench-%s [-n NAME] [-i] [-c CONNS] [-s SIZE] [-w WINDOW]\n"
          "                [-t SECONDS] [-u WARMUP] [-m METRIC]\n"
          "  -n NAME     workload name for the report (default: echo)\n"
          "  -i          idle workload: CONNS connections, no traffic; the\n"
          "              server prints its memory per connection\n"
          "  -c CONNS    connections (default 1)\n"
          "  -s SIZE     bytes per message, at most %d (default 64)\n"
          "  -w WINDOW   bytes in flight per connection (default SIZE:\n"
          "              ping-pong), at most %d messages\n"
          "  -t SECONDS  measured time (default 1)\n"
          "  -u WARMUP   seconds not counted first (default 0.2)\n"
          "  -m METRIC   primary figure, passed through to the report\n",
          name, BENCH_BUF_SIZE, BENCH_MAX_DEPTH);
  exit(2);
}

static void parse(int argc, char **argv) {
  int opt;
  g.p.workload = "echo";
  g.p.conns = 1;
  g.p.size = 64;
  g.p.seconds = 1;
  g.p.warmup = 0.2;
  g.metric = "-";
  while ((opt = getopt(argc, argv, "n:ic:s:w:t:u:m:h")) != -1) {
    switch (opt) {
    case 'n': g.p.workload = optarg; break;
    case 'i': g.p.idle = 1; break;
    case 'c': g.p.conns = atoi(optarg); break;
    case 's': g.p.size = strtoul(optarg, NULL, 10); break;
    case 'w': g.p.window = strtoul(optarg, NULL, 10); break;
    case 't': g.p.seconds = atof(optarg); break;
    case 'u': g.p.warmup = atof(optarg); break;
    case 'm': g.metric = optarg; break;
    default: usage(g.impl->name);
    }
  }
  if (g.p.window == 0) g.p.window = g.p.size;
  if (optind != argc || g.p.conns < 1 || g.p.size < 1 ||
      g.p.size > BENCH_BUF_SIZE || g.p.window < g.p.size ||
      g.p.window / g.p.size > BENCH_MAX_DEPTH || g.p.seconds <= 0 ||
      g.p.warmup < 0)
    usage(g.impl->name);
}

/* Enough descriptors for the idle workload's thousands of connections. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* Reap the server, killing it if it does not finish in ms.  0 if it
   exited 0. */
static int wait_server(pid_t pid, int ms) {
  int status;
  for (int waited = 0; waited < ms; waited += 10) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    if (r < 0) return 1;
    usleep(10000);
  }
  fprintf(stderr, "bench-%s: server did not finish; killed\n", g.impl->name);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return 1;
}

static void print_result(const char *variant) {
  double secs = (double)(g.t1 - g.t0) / 1e9;
  uint64_t bytes = g.bytes1 - g.bytes0, rtts = g.rtts1 - g.rtts0;
  double cpu_c = cpu_seconds(RUSAGE_SELF), cpu_s = cpu_seconds(RUSAGE_CHILDREN);
  double mib_all = (double)g.total_bytes / (1024.0 * 1024.0);
  printf("result impl=%s variant=%s workload=%s metric=%s conns=%d size=%zu "
         "window=%zu secs=%.4f bytes=%llu rtts=%llu mib_s=%.2f rtt_s=%.1f "
         "p50_us=%.2f p99_us=%.2f cpu_client=%.4f cpu_server=%.4f "
         "cpu_us_mib=%.2f cpu_us_rtt=%.3f\n",
         g.impl->name, variant, g.p.workload, g.metric, g.p.conns, g.p.size,
         g.p.window, secs, (unsigned long long)bytes, (unsigned long long)rtts,
         secs > 0 ? (double)bytes / (1024.0 * 1024.0) / secs : 0.0,
         secs > 0 ? (double)rtts / secs : 0.0, hist_quantile(0.5),
         hist_quantile(0.99), cpu_c, cpu_s,
         mib_all > 0 ? (cpu_c + cpu_s) * 1e6 / mib_all : 0.0,
         g.total_rtts ? (cpu_c + cpu_s) * 1e6 / (double)g.total_rtts : 0.0);
}

int bench_main(int argc, char **argv, const bench_impl *impl) {
  g.impl = impl;
  parse(argc, argv);
  raise_fd_limit();
  /* A peer closing mid-write must not kill a plain write() (epoll,
     libevent, libuv); servers ignore SIGPIPE as a rule. */
  signal(SIGPIPE, SIG_IGN);
  /* A hung run must not hang the whole benchmark. */
  alarm((unsigned)(g.p.warmup + g.p.seconds) + 30);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (pipe(g.ctl) != 0) bench_die("pipe: %s", strerror(errno));

  pid_t pid = fork();
  if (pid < 0) bench_die("fork: %s", strerror(errno));
  if (pid == 0) {
    close(g.ctl[0]);
    if (g.p.idle && impl->count_allocs) impl->count_allocs();
    int rc = impl->serve(&g.p);
    fflush(stdout);
    _exit(rc ? 1 : 0);
  }
  close(g.ctl[1]);

  /* The port, as one line. */
  char line[32];
  size_t len = 0;
  int c;
  while (len + 1 < sizeof line && (c = read_byte(g.ctl[0], 10000)) >= 0 && c != '\n')
    line[len++] = (char)c;
  line[len] = 0;
  unsigned port = (unsigned)strtoul(line, NULL, 10);
  if (port == 0) {
    wait_server(pid, 1000);
    bench_die("the server did not start");
  }

  int rc;
  if (g.p.idle) {
    rc = idle_client(port);
  } else {
    g.t_start = bench_now_ns();
    g.t_warm = g.t_start + (uint64_t)(g.p.warmup * 1e9);
    rc = impl->client(&g.p, port);
    if (rc == 0 && !g.running) {
      fprintf(stderr, "bench-%s: no echo came back after the warm-up\n",
              impl->name);
      rc = 1;
    }
  }
  if (wait_server(pid, 10000) != 0) rc = 1;
  if (rc == 0 && !g.p.idle) print_result(bench_variant);
  return rc;
}
