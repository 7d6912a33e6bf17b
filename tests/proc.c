/* SPDX-License-Identifier: MIT */
/*
 * tests/proc.c - child processes of the test binary (see proc.h): start
 * `pier-tests --child NAME CHANNEL` with a channel to it, talk, collect its
 * report, wait for it and kill it at a deadline.
 *
 * Linux: fork + exec of /proc/self/exe (tests/pier-tests may be a libtool
 * wrapper script), the channel an inherited AF_UNIX socketpair end, its
 * descriptor number on the command line.  Windows: CreateProcessW of
 * GetModuleFileNameW (no handles inherited), the channel a loopback TCP
 * connection to a port the parent listens on, given on the command line.
 *
 * Section map
 *   1. plain sockets and channels
 *   2. starting and reaping children
 *   3. the parent's end of the conversation
 *   4. the child's end
 */
#include "proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#  include <windows.h>
#else
#  include <errno.h>
#  include <fcntl.h>
#  include <poll.h>
#  include <signal.h>
#  include <sys/wait.h>
#  include <unistd.h>
#endif

/* ------------------------------------------------------------------ */
/* 1. plain sockets and channels                                      */
/* ------------------------------------------------------------------ */

unsigned long t_self_pid(void) {
#ifdef _WIN32
  return GetCurrentProcessId();
#else
  return (unsigned long)getpid();
#endif
}

/* Exactly n bytes on a plain socket (a receive timeout bounds recv):
   0, or -1 on error, timeout or end of stream. */
int t_os_put(pier_os_socket h, const void *b, size_t n) {
  for (size_t done = 0; done < n;) {
    long k = t_os_send(h, (const char *)b + done, n - done);
    if (k <= 0) return -1;
    done += (size_t)k;
  }
  return 0;
}

int t_os_get(pier_os_socket h, void *b, size_t n) {
  for (size_t done = 0; done < n;) {
    long k = t_os_recv(h, (char *)b + done, n - done);
    if (k <= 0) return -1;
    done += (size_t)k;
  }
  return 0;
}

/* 1 if h has something to read (or has closed) right now. */
int t_os_readable(pier_os_socket h) {
#ifdef _WIN32
  fd_set r;
  struct timeval tv = { 0, 0 };
  FD_ZERO(&r);
  FD_SET(h, &r);
  return select(0, &r, NULL, NULL, &tv) > 0;
#else
  struct pollfd p = { h, POLLIN, 0 };
  return poll(&p, 1, 0) > 0;
#endif
}

/* A connected stream pair outside pier: AF_UNIX on POSIX (what
   pier_share_send needs there), loopback TCP on Windows. */
#ifdef _WIN32
static SOCKET tcp_listener(unsigned short *port) {
  SOCKET l = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                        WSA_FLAG_NO_HANDLE_INHERIT);
  struct sockaddr_in a;
  int alen = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_msg(l != INVALID_SOCKET && bind(l, (struct sockaddr *)&a, sizeof a) == 0 &&
                    listen(l, 1) == 0 &&
                    getsockname(l, (struct sockaddr *)&a, &alen) == 0,
                "channel listener: %s", t_os_strerror(t_os_errno()));
  *port = ntohs(a.sin_port);
  return l;
}

/* Accept the one connection l waits for, within ms. */
static SOCKET tcp_accept(SOCKET l, int ms) {
  fd_set r;
  struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
  FD_ZERO(&r);
  FD_SET(l, &r);
  SOCKET s = select(0, &r, NULL, NULL, &tv) > 0 ? accept(l, NULL, NULL)
                                                 : INVALID_SOCKET;
  closesocket(l);
  return s;
}

void t_chan_pair(pier_os_socket ch[2]) {
  unsigned short port;
  SOCKET l = tcp_listener(&port);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  ch[0] = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                     WSA_FLAG_NO_HANDLE_INHERIT);
  ck_assert_msg(ch[0] != INVALID_SOCKET &&
                    connect(ch[0], (struct sockaddr *)&a, sizeof a) == 0,
                "channel connect: %s", t_os_strerror(t_os_errno()));
  ch[1] = tcp_accept(l, 5000);
  ck_assert_msg(ch[1] != INVALID_SOCKET, "channel accept failed");
}
#else
void t_chan_pair(pier_os_socket ch[2]) {
  ck_assert_msg(socketpair(AF_UNIX, SOCK_STREAM, 0, ch) == 0, "socketpair: %s",
                strerror(errno));
  fcntl(ch[0], F_SETFD, FD_CLOEXEC);
  fcntl(ch[1], F_SETFD, FD_CLOEXEC);
}
#endif

/* ------------------------------------------------------------------ */
/* 2. starting and reaping children                                   */
/* ------------------------------------------------------------------ */

static t_child *live; /* the child the checked teardown must reap */

#ifdef _WIN32
static void spawn(t_child *c, const char *name) {
  unsigned short port;
  SOCKET l = tcp_listener(&port);
  wchar_t exe[MAX_PATH], wname[64], cmd[MAX_PATH + 128];
  DWORD n = GetModuleFileNameW(NULL, exe, MAX_PATH);
  ck_assert_msg(n > 0 && n < MAX_PATH, "GetModuleFileNameW failed");
  MultiByteToWideChar(CP_UTF8, 0, name, -1, wname, 64);
  swprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" --child %ls %u", exe,
           wname, (unsigned)port);
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  BOOL ok = CreateProcessW(exe, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi);
  if (!ok) closesocket(l);
  ck_assert_msg(ok, "CreateProcessW failed: %lu", (unsigned long)GetLastError());
  CloseHandle(pi.hThread);
  c->process = pi.hProcess;
  c->id = pi.dwProcessId;
  live = c;
  c->chan = tcp_accept(l, T_CHAN_MS);
  ck_assert_msg(c->chan != INVALID_SOCKET, "the child never connected");
}
#else
static void spawn(t_child *c, const char *name) {
#  ifdef __linux__
  const char *exe = "/proc/self/exe"; /* the binary, not a libtool script */
#  else
  const char *exe = NULL;
  ck_abort_msg("starting a child needs /proc/self/exe (Linux)");
#  endif
  int sv[2];
  t_chan_pair(sv);
  char fd_arg[16];
  snprintf(fd_arg, sizeof fd_arg, "%d", sv[1]);
  char *argv[] = { "pier-tests", "--child", (char *)name, fd_arg, NULL };
  pid_t pid = fork();
  if (pid == 0) { /* async-signal-safe calls only until exec */
    fcntl(sv[1], F_SETFD, 0);
    execv(exe, argv);
    _exit(127);
  }
  close(sv[1]);
  if (pid < 0) close(sv[0]);
  ck_assert_msg(pid > 0, "fork: %s", strerror(errno));
  c->pid = pid;
  c->id = (unsigned long)pid;
  c->chan = sv[0];
  live = c;
}
#endif

void t_child_start(t_child *c, const char *name) {
  memset(c, 0, sizeof *c);
  c->chan = PIER_INVALID_SOCKET;
  spawn(c, name);
  ck_assert_int_eq(t_os_set_rcvtimeo(c->chan, T_CHAN_MS), 0);
}

/* Wait up to ms for the child to exit, then kill it; its exit status
   (128 + signal when killed by one, -1 when killed at the deadline).
   Closes the channel. */
int t_child_wait(t_child *c, int ms) {
  int code = -1;
  if (c->chan != PIER_INVALID_SOCKET) t_os_close(c->chan);
  c->chan = PIER_INVALID_SOCKET;
#ifdef _WIN32
  if (!c->process) return code;
  if (WaitForSingleObject(c->process, (DWORD)ms) != WAIT_OBJECT_0) {
    TerminateProcess(c->process, 9);
    WaitForSingleObject(c->process, INFINITE);
  } else {
    DWORD st = 0;
    GetExitCodeProcess(c->process, &st);
    code = (int)st;
  }
  CloseHandle(c->process);
  c->process = NULL;
#else
  if (c->pid <= 0) return code;
  uint64_t until = t_now_ms() + (uint64_t)ms;
  int st = 0;
  pid_t r;
  while ((r = waitpid(c->pid, &st, WNOHANG)) == 0 && t_now_ms() < until)
    t_sleep_ms(5);
  if (r == 0) {
    kill(c->pid, SIGKILL);
    while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR) {
    }
  } else if (r == c->pid) {
    code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  c->pid = 0;
#endif
  if (live == c) live = NULL;
  return code;
}

/* The checked teardown: a test that failed half-way leaves no child. */
void t_child_reap(void) {
  if (live) t_child_wait(live, 0);
}

/* ------------------------------------------------------------------ */
/* 3. the parent's end of the conversation                            */
/* ------------------------------------------------------------------ */

/* The child's report: 'R', status (0: passed), length, message. */
static void read_report(t_child *c, unsigned char head1, char *text, size_t cap,
                        int *status) {
  unsigned char h[2];
  *status = -1;
  text[0] = 0;
  if (head1 != 'R' || t_os_get(c->chan, h, 2) != 0) return;
  size_t n = h[1] < cap ? h[1] : cap - 1;
  if (t_os_get(c->chan, text, n) != 0) n = 0;
  text[n] = 0;
  *status = h[0];
}

/* The next byte from the child, which must be want; a report in its place
   (the child gave up) fails the test with the child's message. */
void t_child_expect(t_child *c, int want) {
  unsigned char b = 0;
  ck_assert_msg(t_os_get(c->chan, &b, 1) == 0,
                "nothing from the child on the channel (waiting for '%c')", want);
  if (b == want) return;
  char text[256];
  int status;
  read_report(c, b, text, sizeof text, &status);
  ck_abort_msg("child: expected '%c', got 0x%02x: %s", want, b, text);
}

void t_child_send(t_child *c, int b) {
  unsigned char v = (unsigned char)b;
  ck_assert_msg(t_os_put(c->chan, &v, 1) == 0, "channel: %s",
                t_os_strerror(t_os_errno()));
}

/* The child's report, then its exit: both must say it passed. */
void t_child_finish(t_child *c, int exit_ms) {
  unsigned char b = 0;
  char text[256];
  int status = -1;
  if (t_os_get(c->chan, &b, 1) == 0) read_report(c, b, text, sizeof text, &status);
  else snprintf(text, sizeof text, "(no report)");
  int code = t_child_wait(c, exit_ms);
  ck_assert_msg(status == 0, "child failed: %s (exit status %d)", text, code);
  ck_assert_msg(code == 0, "child exit status %d", code);
}

/* What the child has reported so far, if it gave up: its message. */
const char *t_child_news(t_child *c, char *text, size_t cap) {
  unsigned char b = 0;
  int status;
  snprintf(text, cap, "(nothing)");
  if (t_os_readable(c->chan) && t_os_get(c->chan, &b, 1) == 0)
    read_report(c, b, text, cap, &status);
  return text;
}

/* ------------------------------------------------------------------ */
/* 4. the child's end                                                 */
/* ------------------------------------------------------------------ */

pier_os_socket t_child_channel(const char *arg) {
#ifdef _WIN32
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((unsigned short)atoi(arg));
  SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (s != INVALID_SOCKET && connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
    closesocket(s);
    s = INVALID_SOCKET;
  }
  return s;
#else
  return atoi(arg);
#endif
}

int t_child_report(pier_os_socket ch, int status, const char *text) {
  size_t n = strlen(text) > 255 ? 255 : strlen(text);
  unsigned char head[3] = { 'R', (unsigned char)status, (unsigned char)n };
  return t_os_put(ch, head, 3) || t_os_put(ch, text, n) ? -1 : 0;
}
