/* SPDX-License-Identifier: MIT */
/*
 * bench/common.c - small helpers shared by the load generator and the
 * comparison servers (see common.h).
 */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

const char *bench_name = "bench";

void bench_die(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", bench_name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct sockaddr_in bench_loopback(unsigned port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((unsigned short)port);
  return sin;
}

long bench_raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}

void bench_server_args(int argc, char **argv, unsigned *port, int *accept_close) {
  *port = 0;
  *accept_close = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) *port = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "--accept-close") == 0) *accept_close = 1;
    else {
      fprintf(stderr, "usage: %s -p PORT [--accept-close]\n", bench_name);
      exit(2);
    }
  }
}

void bench_server_listening(unsigned port) {
  printf("%s: listening on 127.0.0.1:%u\n", bench_name, port);
  fflush(stdout);
}
