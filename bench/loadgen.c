/* SPDX-License-Identifier: MIT */
/*
 * bench/loadgen.c - the one load generator that drives every server
 * (pier's examples/iocpserver and the comparison servers alike), on raw
 * epoll so that it costs the same whatever it drives.  It runs pinned to
 * its own core (bench/run uses taskset); it measures the server from the
 * outside through /proc/PID, so the servers need no instrumentation.
 *
 *   loadgen -p PORT -P SERVER_PID -m echo   -c CONNS -s SIZE -d DEPTH -t SECS -u WARMUP
 *   loadgen -p PORT -P SERVER_PID -m idle   -c CONNS
 *   loadgen -p PORT -P SERVER_PID -m accept -c CONCURRENT -t SECS -u WARMUP
 *   common: [-i IMPL] [-n WORKLOAD] [-H HEAPFILE]   (names for the result line;
 *           HEAPFILE: the counters of bench/heapcount.so preloaded in the server)
 *
 * It prints one line, "result impl=... workload=... key=value ...":
 *  echo    CONNS connections, each keeping DEPTH messages of SIZE bytes in
 *          flight (DEPTH 1: ping-pong).  After WARMUP seconds the window
 *          opens at the next echo; it closes SECS later.  msgs_s: messages
 *          echoed per second; p50_us/p99_us: round trip of a message, sent to
 *          fully echoed; cpu_ns_msg: server CPU time over the window (all its
 *          threads: the sum of /proc/PID/task/N/schedstat run times, which
 *          is utime + stime without the 10 ms tick) divided by the messages.
 *  idle    opens CONNS connections (in batches, waiting until the server
 *          holds them all: counted in /proc/PID/fd), 300 ms later reads the
 *          server's resident set (/proc/PID/statm) and heap (HEAPFILE);
 *          rss_b/heap_b: growth per connection.  If the OS refuses
 *          connections before CONNS, it measures those it has (conns=).
 *  accept  keeps CONCURRENT connects in flight; one counts when the server
 *          has closed it (end of stream seen), then the client resets it
 *          and connects again.  accepts_s and cpu_ns_acc (server CPU per
 *          accepted connection).
 */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define MAX_EVENTS 512
#define MAX_DEPTH 64
#define HIST_NS 100                 /* latency buckets of 100 ns ... */
#define HIST_BUCKETS 2000000        /* ... up to 200 ms, then one overflow */
#define RBUF (256 * 1024)

static struct {
  const char *mode, *impl, *workload, *heapfile;
  unsigned port;
  int pid, conns, depth;
  size_t size;
  double secs, warmup;
} o = {"echo", "-", "-", NULL, 0, 0, 1, 1, 64, 1, 0.2};

static int ep, timer_fd = -1;
static char rbuf[RBUF];
static uint32_t *hist;

/* ------------------------------------------------------------------ */
/* the server, seen from /proc                                         */
/* ------------------------------------------------------------------ */

/* CPU time of every thread of the server, in ns: schedstat's run time
   (exact), else utime + stime from /proc/PID/stat (ticks). */
static uint64_t server_cpu_ns(void) {
  char path[64];
  uint64_t sum = 0;
  int any = 0;
  snprintf(path, sizeof path, "/proc/%d/task", o.pid);
  DIR *d = opendir(path);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char p[320];
      unsigned long long run = 0;
      snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", o.pid, e->d_name);
      FILE *f = fopen(p, "r");
      if (!f) continue;
      if (fscanf(f, "%llu", &run) == 1) { sum += run; any = 1; }
      fclose(f);
    }
    closedir(d);
  }
  if (any) return sum;
  snprintf(path, sizeof path, "/proc/%d/stat", o.pid);
  FILE *f = fopen(path, "r");
  char line[1024];
  if (!f || !fgets(line, sizeof line, f)) bench_die("cannot read %s", path);
  fclose(f);
  char *p = strrchr(line, ')');
  unsigned long ut = 0, st = 0;
  /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
     majflt cmajflt utime stime */
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                   &ut, &st) != 2)
    bench_die("cannot parse %s", path);
  return (uint64_t)(ut + st) * (1000000000u / (uint64_t)sysconf(_SC_CLK_TCK));
}

static long server_rss(void) {
  char path[64];
  unsigned long size, res;
  snprintf(path, sizeof path, "/proc/%d/statm", o.pid);
  FILE *f = fopen(path, "r");
  if (!f || fscanf(f, "%lu %lu", &size, &res) != 2) bench_die("cannot read %s", path);
  fclose(f);
  return (long)res * sysconf(_SC_PAGESIZE);
}

static int server_fds(void) {
  char path[64];
  int n = 0;
  snprintf(path, sizeof path, "/proc/%d/fd", o.pid);
  DIR *d = opendir(path);
  if (!d) bench_die("cannot read %s", path);
  struct dirent *e;
  while ((e = readdir(d))) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* The counters bench/heapcount.so keeps in the server (see there):
   bytes live per origin, and the origins' names. */
#define HEAP_ORIGINS 4
static const char *heap_names[HEAP_ORIGINS] = {"app", "pier", "libevent", "libuv"};
static volatile int64_t *heap;

static void heap_open(void) {
  if (!o.heapfile) return;
  int fd = open(o.heapfile, O_RDONLY);
  if (fd < 0) bench_die("%s: %s", o.heapfile, strerror(errno));
  void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) bench_die("mmap %s: %s", o.heapfile, strerror(errno));
  heap = m;
}

/* ------------------------------------------------------------------ */
/* sockets                                                             */
/* ------------------------------------------------------------------ */

static int open_socket(int nonblock) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Close with a reset: no TIME_WAIT left behind on either side, so
   thousands of runs never run out of ports. */
static void reset_close(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

static void arm_timer(double secs) {
  uint64_t ns = (uint64_t)(secs * 1e9);
  struct itimerspec its = {{0, 0}, {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)}};
  timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (timer_fd < 0 || timerfd_settime(timer_fd, 0, &its, NULL) != 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, timer_fd, &ev) != 0)
    bench_die("timerfd: %s", strerror(errno));
}

/* ------------------------------------------------------------------ */
/* echo                                                                */
/* ------------------------------------------------------------------ */

typedef struct econn {
  int fd, connected;
  unsigned events;
  size_t out_left;               /* bytes of the current message to send */
  uint64_t sent, received;       /* bytes */
  uint64_t stamp[MAX_DEPTH];     /* send time of each message in flight */
} econn;

static struct {
  uint64_t t_warm, t0, t1, cpu0, cpu1, msgs, msgs0, msgs1;
  int running, stopped;
} e;

static void ewatch(econn *k, unsigned events) {
  if (k->events == events) return;
  struct epoll_event ev = {.events = events, .data.ptr = k};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, k->fd, &ev) != 0) bench_die("epoll_ctl: %s", strerror(errno));
  k->events = events;
}

static void esend(econn *k) {
  for (;;) {
    if (k->out_left == 0) {
      if (e.stopped || k->sent - k->received + o.size > o.size * (size_t)o.depth) break;
      k->stamp[(k->sent / o.size) % MAX_DEPTH] = bench_now_ns();
      k->out_left = o.size;
    }
    ssize_t w = send(k->fd, rbuf, k->out_left, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN) bench_die("send: %s", strerror(errno));
      break;
    }
    k->out_left -= (size_t)w;
    k->sent += (size_t)w;
  }
  ewatch(k, k->out_left ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void ereceived(econn *k, size_t n) {
  uint64_t now = bench_now_ns(), first = k->received / o.size;
  k->received += n;
  uint64_t done = k->received / o.size;
  e.msgs += done - first;
  if (!e.running && !e.stopped && now >= e.t_warm && done > first) {
    e.running = 1; /* the window opens with this echo, which is not counted */
    e.t0 = now;
    e.cpu0 = server_cpu_ns();
    e.msgs0 = e.msgs;
    return;
  }
  if (!e.running || e.stopped) return;
  for (; first < done; first++) {
    uint64_t b = (now - k->stamp[first % MAX_DEPTH]) / HIST_NS;
    hist[b < HIST_BUCKETS ? b : HIST_BUCKETS]++;
  }
}

static double quantile(double q) {
  uint64_t n = 0, seen = 0;
  for (size_t i = 0; i <= HIST_BUCKETS; i++) n += hist[i];
  if (n == 0) return 0;
  uint64_t want = (uint64_t)(q * (double)(n - 1)) + 1;
  for (size_t i = 0; i <= HIST_BUCKETS; i++)
    if ((seen += hist[i]) >= want) return ((double)i + 0.5) * HIST_NS / 1000.0;
  return 0;
}

static void eevent(econn *k, unsigned events) {
  if (!k->connected) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) bench_die("connect: %s", strerror(err));
    k->connected = 1;
  } else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    ssize_t n = read(k->fd, rbuf, sizeof rbuf);
    if (n == 0 || (n < 0 && errno != EAGAIN))
      bench_die("recv: %s", n ? strerror(errno) : "end of stream");
    if (n > 0) ereceived(k, (size_t)n);
  }
  esend(k);
}

static int run_echo(void) {
  if (o.depth < 1 || o.depth > MAX_DEPTH || o.size < 1 || o.size > RBUF)
    bench_die("bad -d or -s");
  hist = calloc(HIST_BUCKETS + 1, sizeof *hist);
  econn *all = calloc((size_t)o.conns, sizeof *all);
  if (!hist || !all) bench_die("out of memory");
  struct sockaddr_in sin = bench_loopback(o.port);
  uint64_t start = bench_now_ns();
  e.t_warm = start + (uint64_t)(o.warmup * 1e9);
  for (int i = 0; i < o.conns; i++) {
    econn *k = &all[i];
    if ((k->fd = open_socket(1)) < 0) bench_die("socket: %s", strerror(errno));
    if (connect(k->fd, (struct sockaddr *)&sin, sizeof sin) != 0 && errno != EINPROGRESS)
      bench_die("connect: %s", strerror(errno));
    k->events = EPOLLOUT; /* writable: connected */
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = k};
    epoll_ctl(ep, EPOLL_CTL_ADD, k->fd, &ev);
  }
  arm_timer(o.warmup + o.secs);
  struct epoll_event evs[MAX_EVENTS];
  while (!e.stopped) {
    int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) bench_die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n && !e.stopped; i++) {
      if (evs[i].data.ptr == NULL) {
        e.stopped = 1;
        e.t1 = bench_now_ns();
        e.cpu1 = server_cpu_ns();
        e.msgs1 = e.msgs;
      } else {
        eevent(evs[i].data.ptr, evs[i].events);
      }
    }
  }
  if (!e.running) bench_die("no echo came back after the warm-up");
  for (int i = 0; i < o.conns; i++) reset_close(all[i].fd);
  double secs = (double)(e.t1 - e.t0) / 1e9;
  uint64_t msgs = e.msgs1 - e.msgs0;
  printf("result impl=%s workload=%s conns=%d size=%zu depth=%d secs=%.3f "
         "msgs=%llu msgs_s=%.1f mib_s=%.2f p50_us=%.1f p99_us=%.1f "
         "cpu_s=%.4f cpu_ns_msg=%.1f\n",
         o.impl, o.workload, o.conns, o.size, o.depth, secs,
         (unsigned long long)msgs, msgs / secs,
         (double)msgs * (double)o.size / secs / (1024.0 * 1024.0),
         quantile(0.5), quantile(0.99), (double)(e.cpu1 - e.cpu0) / 1e9,
         msgs ? (double)(e.cpu1 - e.cpu0) / (double)msgs : 0.0);
  return 0;
}

/* ------------------------------------------------------------------ */
/* idle                                                                */
/* ------------------------------------------------------------------ */

/* Wait until the server holds want descriptors (up to ms); the count. */
static int wait_fds(int want, int ms) {
  int have = server_fds();
  for (int waited = 0; have < want && waited < ms; waited += 5) {
    usleep(5000);
    have = server_fds();
  }
  return have;
}

static int run_idle(void) {
  int *fds = calloc((size_t)o.conns, sizeof *fds), n = 0;
  if (!fds) bench_die("out of memory");
  struct sockaddr_in sin = bench_loopback(o.port);
  heap_open();
  usleep(100000); /* the server has settled after starting */
  int fd0 = server_fds();
  long rss0 = server_rss();
  int64_t heap0[HEAP_ORIGINS] = {0};
  for (int i = 0; heap && i < HEAP_ORIGINS; i++) heap0[i] = heap[i];
  const char *why = "-";
  while (n < o.conns) {
    int fd = open_socket(0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
      why = strerror(errno); /* EMFILE, EADDRNOTAVAIL ...: keep what we have */
      if (fd >= 0) close(fd);
      break;
    }
    fds[n++] = fd;
    /* Never more waiting in the accept queue than it holds. */
    if (n % 500 == 0 && wait_fds(fd0 + n - 100, 10000) < fd0 + n - 100) {
      why = "the server stopped accepting";
      break;
    }
  }
  int held = wait_fds(fd0 + n, 10000) - fd0;
  usleep(300000); /* let lazy work (loops going round) happen */
  long rss1 = server_rss();
  printf("result impl=%s workload=%s conns=%d wanted=%d held=%d rss_b=%.1f",
         o.impl, o.workload, n, o.conns, held, (double)(rss1 - rss0) / (n ? n : 1));
  if (heap) {
    int64_t tot = 0;
    for (int i = 0; i < HEAP_ORIGINS; i++) {
      int64_t d = heap[i] - heap0[i];
      tot += d;
      printf(" heap_%s_b=%.1f", heap_names[i], (double)d / (n ? n : 1));
    }
    printf(" heap_b=%.1f", (double)tot / (n ? n : 1));
  }
  printf(" short=\"%s\"\n", n < o.conns ? why : "-");
  for (int i = 0; i < n; i++) reset_close(fds[i]);
  return held < n;
}

/* ------------------------------------------------------------------ */
/* accept                                                              */
/* ------------------------------------------------------------------ */

static struct {
  uint64_t done, errors;
  int stopped;
} a;

static void aconnect(const struct sockaddr_in *sin) {
  int fd = open_socket(1);
  if (fd < 0) bench_die("socket: %s", strerror(errno));
  if (connect(fd, (const struct sockaddr *)sin, sizeof *sin) != 0 && errno != EINPROGRESS)
    bench_die("connect: %s", strerror(errno));
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) bench_die("epoll_ctl: %s", strerror(errno));
}

static int run_accept(void) {
  struct sockaddr_in sin = bench_loopback(o.port);
  for (int i = 0; i < o.conns; i++) aconnect(&sin);
  timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  uint64_t ns = (uint64_t)(o.warmup * 1e9);
  struct itimerspec its = {{0, 0}, {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u) + 1}};
  struct epoll_event tev = {.events = EPOLLIN, .data.fd = -1};
  if (timer_fd < 0 || timerfd_settime(timer_fd, 0, &its, NULL) != 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, timer_fd, &tev) != 0)
    bench_die("timerfd: %s", strerror(errno));
  int phase = 0; /* 0 warm-up, 1 measuring */
  uint64_t t0 = 0, t1 = 0, cpu0 = 0, cpu1 = 0, done0 = 0, done1 = 0;
  struct epoll_event evs[MAX_EVENTS];
  while (!a.stopped) {
    int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) bench_die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == -1) {
        uint64_t x;
        if (read(timer_fd, &x, sizeof x) < 0) { /* nothing */ }
        if (phase == 0) {
          phase = 1;
          t0 = bench_now_ns();
          cpu0 = server_cpu_ns();
          done0 = a.done;
          ns = (uint64_t)(o.secs * 1e9);
          struct itimerspec t = {{0, 0}, {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)}};
          timerfd_settime(timer_fd, 0, &t, NULL);
        } else {
          t1 = bench_now_ns();
          cpu1 = server_cpu_ns();
          done1 = a.done;
          a.stopped = 1;
        }
        continue;
      }
      if (evs[i].events & EPOLLERR) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != ECONNRESET && err != 0) bench_die("connect: %s", strerror(err));
        a.errors++;
      } else {
        ssize_t r = read(fd, rbuf, sizeof rbuf);
        if (r > 0) bench_die("accept: the server sent data");
        if (r < 0 && errno == EAGAIN) continue;
        a.done++;
      }
      reset_close(fd);
      if (!a.stopped) aconnect(&sin);
    }
  }
  double secs = (double)(t1 - t0) / 1e9;
  uint64_t done = done1 - done0;
  printf("result impl=%s workload=%s concurrent=%d secs=%.3f accepts=%llu "
         "accepts_s=%.1f errors=%llu cpu_s=%.4f cpu_ns_acc=%.1f\n",
         o.impl, o.workload, o.conns, secs, (unsigned long long)done, done / secs,
         (unsigned long long)a.errors, (double)(cpu1 - cpu0) / 1e9,
         done ? (double)(cpu1 - cpu0) / (double)done : 0.0);
  return done == 0;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv) {
  int opt;
  bench_name = "loadgen";
  while ((opt = getopt(argc, argv, "p:P:m:c:s:d:t:u:i:n:H:")) != -1) {
    switch (opt) {
    case 'p': o.port = (unsigned)atoi(optarg); break;
    case 'P': o.pid = atoi(optarg); break;
    case 'm': o.mode = optarg; break;
    case 'c': o.conns = atoi(optarg); break;
    case 's': o.size = strtoul(optarg, NULL, 10); break;
    case 'd': o.depth = atoi(optarg); break;
    case 't': o.secs = atof(optarg); break;
    case 'u': o.warmup = atof(optarg); break;
    case 'i': o.impl = optarg; break;
    case 'n': o.workload = optarg; break;
    case 'H': o.heapfile = optarg; break;
    default:
      fprintf(stderr, "usage: see the comment at the top of bench/loadgen.c\n");
      return 2;
    }
  }
  if (!o.port || o.pid <= 0 || o.conns < 1 || o.secs <= 0 || o.warmup < 0)
    bench_die("need -p PORT -P PID, and sane -c -t -u");
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  long lim = bench_raise_fd_limit();
  if (strcmp(o.mode, "idle") == 0 && o.conns > lim - 32) o.conns = (int)(lim - 32);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) bench_die("epoll_create1: %s", strerror(errno));
  if (strcmp(o.mode, "echo") == 0) return run_echo();
  if (strcmp(o.mode, "idle") == 0) return run_idle();
  if (strcmp(o.mode, "accept") == 0) return run_accept();
  bench_die("unknown mode %s", o.mode);
  return 2;
}
