/* SPDX-License-Identifier: MIT */
/*
 * bench/common.h - what the benchmark's programs share: the load
 * generator (loadgen.c) and the three comparison echo servers
 * (server-epoll.c, server-libuv.c, server-bufferevent.c).  pier's server
 * is not here: it is examples/iocpserver, measured as users copy it.
 *
 * Every server takes the same arguments as iocpserver does for the
 * benchmark:  SERVER -p PORT [--accept-close]  (port 0: any free port),
 * prints one line ending in "listening on 127.0.0.1:PORT" on stdout once
 * it accepts, and serves until it is killed.  --accept-close: close every
 * connection as soon as it is accepted (the accept-rate workload).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

/* Largest message, and the size of the read buffers. */
#define BENCH_BUF_SIZE (64 * 1024)

/* Name printed in front of error messages ("server-epoll", "loadgen"). */
extern const char *bench_name;

/* Print "NAME: message" to stderr and exit(1). */
void bench_die(const char *fmt, ...);

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/* 127.0.0.1:port */
struct sockaddr_in bench_loopback(unsigned port);

/* Raise RLIMIT_NOFILE's soft limit to the hard one; returns the limit. */
long bench_raise_fd_limit(void);

/* A server's arguments: -p PORT [--accept-close]; exits 2 on others. */
void bench_server_args(int argc, char **argv, unsigned *port, int *accept_close);

/* The line the benchmark waits for, with the port actually bound. */
void bench_server_listening(unsigned port);

#endif /* BENCH_COMMON_H */
