/* SPDX-License-Identifier: MIT */
/*
 * tests/proc.h - child processes of the test binary, for suites that need
 * a second process (tests/test_share.c).  A child is this binary again,
 * `pier-tests --child NAME CHANNEL` (tests/main.c hands it to the suite's
 * child function before Check starts), with a stream channel to its
 * parent; it ends its run with a report on the channel (status and
 * message), and the parent always waits for it, killing it at a deadline.
 */
#ifndef PIER_TESTS_PROC_H
#define PIER_TESTS_PROC_H

#include "helpers.h"

/* The longest either side waits for the other on the channel. */
#define T_CHAN_MS 20000

typedef struct t_child {
#ifdef _WIN32
  HANDLE process;
#else
  pid_t pid;
#endif
  unsigned long id;     /* its process id */
  pier_os_socket chan;  /* the parent's end of the channel */
} t_child;

/* --- plain sockets, either side (no Check) ---------------------------- */

/* This process's id. */
unsigned long t_self_pid(void);
/* Exactly n bytes on a plain socket (a receive timeout set with
   t_os_set_rcvtimeo bounds the wait): 0, or -1 on error, timeout or end
   of stream. */
int t_os_put(pier_os_socket h, const void *b, size_t n);
int t_os_get(pier_os_socket h, void *b, size_t n);
/* 1 if h has something to read (or has closed) right now. */
int t_os_readable(pier_os_socket h);

/* --- the parent's side (Check assertions) ----------------------------- */

/* A connected stream pair outside pier, close-on-exec / not inherited:
   AF_UNIX on POSIX, loopback TCP on Windows. */
void t_chan_pair(pier_os_socket ch[2]);
/* Start child NAME with a channel; the channel's receives time out after
   T_CHAN_MS. */
void t_child_start(t_child *c, const char *name);
/* Close the channel, wait up to ms for the child to exit, then kill it.
   Its exit status (128 + signal if one ended it), or -1 if killed here. */
int t_child_wait(t_child *c, int ms);
/* For tcase_add_checked_fixture: kill and reap a child a failed test
   left behind. */
void t_child_reap(void);
/* One byte to the child. */
void t_child_send(t_child *c, int b);
/* The next byte from the child must be want; a report in its place (the
   child gave up) fails the test with the child's message. */
void t_child_expect(t_child *c, int want);
/* The child's report, then its exit within exit_ms: both must say it
   passed. */
void t_child_finish(t_child *c, int exit_ms);
/* The child's message if it has reported already (it gave up), else
   "(nothing)"; for failure messages. */
const char *t_child_news(t_child *c, char *text, size_t cap);

/* --- the child's side (no Check) --------------------------------------- */

/* The channel named on the command line, or PIER_INVALID_SOCKET. */
pier_os_socket t_child_channel(const char *arg);
/* The report ending a child's run: status 0 when it passed. 0 or -1. */
int t_child_report(pier_os_socket ch, int status, const char *text);

#endif
