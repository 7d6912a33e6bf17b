/* SPDX-License-Identifier: MIT */
/*
 * tests/helpers.c - shared helpers of the Check suites (see helpers.h):
 * loops on the provider under test, bounded loop runs, loopback
 * listeners and connected pairs, plain OS clients and file I/O on socket
 * handles, a deterministic byte pattern, a monotonic clock and a counting
 * callback.
 */
#include "helpers.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#  include <windows.h>
#else
#  include <arpa/inet.h>
#  include <errno.h>
#  include <fcntl.h>
#  include <poll.h>
#  include <sys/time.h>
#  include <sys/un.h>
#  include <time.h>
#  include <unistd.h>
#endif

/* ------------------------------------------------------------------ */
/* loops                                                               */
/* ------------------------------------------------------------------ */

pier_loop *t_loop_new(void) {
  pier_loop *loop = NULL;
  T_OK(pier_loop_new(NULL, &loop));
  ck_assert_ptr_nonnull(loop);
  return loop;
}

pier_loop *t_loop_threads(unsigned n) {
  pier_loop_options o;
  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  o.threads = n;
  pier_loop *loop = NULL;
  T_OK(pier_loop_new(&o, &loop));
  return loop;
}

/*
 * Sockets cannot be enumerated through the public API: tests close their
 * own, and this runs the loop until their close callbacks have run and
 * pier_loop_free() stops answering PIER_EBUSY (bounded to 2 s).
 */
void t_loop_free(pier_loop *loop) {
  uint64_t deadline = t_now_ms() + 2000;
  int rc;
  while ((rc = pier_loop_free(loop)) == PIER_EBUSY && t_now_ms() < deadline) {
    int run = pier_loop_run(loop, PIER_RUN_NOWAIT);
    ck_assert_msg(run >= 0, "pier_loop_run(NOWAIT) returned %d (%s)", run,
                  pier_err_name(run));
    t_sleep_ms(1);
  }
  ck_assert_msg(rc == 0,
                "pier_loop_free returned %d (%s) after 2000 ms: something "
                "(socket, timer, post) is still alive",
                rc, pier_err_name(rc));
}

/* The wake-up timer of t_run_until*: keeps PIER_RUN_ONCE from blocking. */
static void tick_cb(pier_timer *t) { (void)t; }

/* Is the wait over?  want == 0: *v non-zero; else *v >= want. */
static int reached(volatile int *v, int want) {
  return want == 0 ? *v != 0 : *v >= want;
}

static void run_until(pier_loop *loop, volatile int *v, int want,
                      int timeout_ms) {
  pier_timer tick;
  uint64_t deadline = t_now_ms() + (uint64_t)timeout_ms;
  T_OK(pier_timer_init(loop, &tick));
  T_OK(pier_timer_start(&tick, 10, 10, tick_cb));
  while (!reached(v, want)) {
    if (t_now_ms() > deadline) {
      pier_timer_stop(&tick);
      ck_abort_msg("timed out after %d ms (value %d, waiting for %s %d)",
                   timeout_ms, *v, want ? ">=" : "!=", want);
    }
    int rc = pier_loop_run(loop, PIER_RUN_ONCE);
    ck_assert_msg(rc >= 0, "pier_loop_run(ONCE) returned %d (%s)", rc,
                  pier_err_name(rc));
  }
  T_OK(pier_timer_stop(&tick));
}

void t_run_until(pier_loop *loop, volatile int *flag, int timeout_ms) {
  run_until(loop, flag, 0, timeout_ms);
}

void t_run_until_count(pier_loop *loop, volatile int *count, int target,
                       int timeout_ms) {
  if (target <= 0) return;
  run_until(loop, count, target, timeout_ms);
}

/* ------------------------------------------------------------------ */
/* addresses, listeners, pairs                                         */
/* ------------------------------------------------------------------ */

static int proto_family(const char *proto) {
  const pier_protocol_info *p = pier_protocol_find(proto);
  ck_assert_msg(p != NULL, "catalog has no entry \"%s\"", proto);
  return p->family;
}

#ifndef _WIN32
/* AF_UNIX paths handed out by this process, unlinked when it exits. */
static unsigned n_paths;
static pid_t paths_pid;

static void unlink_paths(void) {
  char path[64];
  if (getpid() != paths_pid) return; /* a forked child's copy: not ours */
  for (unsigned i = 0; i < n_paths; i++) {
    snprintf(path, sizeof path, "/tmp/pier-t-%ld-%u.sock", (long)paths_pid, i);
    unlink(path);
  }
}

static void unix_path(char *buf, size_t cap) {
  if (paths_pid != getpid()) { /* first use in this (forked) process */
    if (paths_pid == 0) atexit(unlink_paths);
    paths_pid = getpid();
    n_paths = 0;
  }
  snprintf(buf, cap, "/tmp/pier-t-%ld-%u.sock", (long)paths_pid, n_paths++);
  unlink(buf);
}
#endif

void t_loopback(const char *proto, struct sockaddr_storage *addr,
                size_t *len) {
  int family = proto_family(proto);
  memset(addr, 0, sizeof *addr);
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof *sin;
  } else if (family == AF_INET6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)addr;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_loopback;
    *len = sizeof *sin6;
#ifndef _WIN32
  } else if (family == AF_UNIX) {
    /* A fresh path under /tmp: AF_UNIX has no port 0. */
    struct sockaddr_un *sun = (struct sockaddr_un *)addr;
    sun->sun_family = AF_UNIX;
    unix_path(sun->sun_path, sizeof sun->sun_path);
    *len = sizeof *sun;
#endif
  } else {
    ck_abort_msg("no loopback address for \"%s\" (family %d)", proto, family);
  }
}

int t_addr_eq(const struct sockaddr *a, size_t alen, const struct sockaddr *b,
              size_t blen) {
  if (a->sa_family != b->sa_family) return 0;
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return alen != 0 && alen == blen && memcmp(a, b, alen) == 0;
}

pier_socket *t_listener(pier_loop *loop, const char *proto,
                        struct sockaddr_storage *addr, size_t *len) {
  return t_listener_backlog(loop, proto, addr, len, 64);
}

pier_socket *t_listener_backlog(pier_loop *loop, const char *proto,
                                struct sockaddr_storage *addr, size_t *len,
                                int backlog) {
  const pier_protocol_info *p = pier_protocol_find(proto);
  pier_socket *s = NULL;
  struct sockaddr_storage bind_addr;
  size_t bind_len;
  ck_assert_msg(p != NULL, "catalog has no entry \"%s\"", proto);
  T_OK(pier_socket_open(loop, p, 0, &s));
  if (p->family != AF_UNIX) T_OK(pier_setsockopt(s, PIER_SO_REUSEADDR, 1));
  t_loopback(proto, &bind_addr, &bind_len);
  T_OK(pier_bind(s, (const struct sockaddr *)&bind_addr, bind_len));
  T_OK(pier_listen(s, backlog));
  *len = sizeof *addr;
  T_OK(pier_getsockname(s, addr, len));
  return s;
}

void t_pair(pier_loop *loop, const char *proto, pier_socket **client,
            pier_socket **server) {
  struct sockaddr_storage addr;
  size_t len;
  pier_op aop, cop;
  int done = 0;
  pier_socket *l = t_listener(loop, proto, &addr, &len);

  memset(&aop, 0, sizeof aop);
  memset(&cop, 0, sizeof cop);
  aop.data = cop.data = &done;
  T_OK(pier_socket_open(loop, pier_protocol_find(proto), 0, client));
  T_OK(pier_accept(l, &aop, NULL, NULL, t_count_cb));
  T_OK(pier_connect(*client, &cop, (const struct sockaddr *)&addr, len, NULL,
                    NULL, t_count_cb));
  t_run_until_count(loop, &done, 2, 3000);
  T_OK(aop.status);
  T_OK(cop.status);
  ck_assert_ptr_nonnull(aop.accepted);
  *server = aop.accepted;
  T_OK(pier_close(l, NULL));
}

/* ------------------------------------------------------------------ */
/* plain OS sockets                                                    */
/* ------------------------------------------------------------------ */

void t_os_init(void) {
#ifdef _WIN32
  WSADATA wsa;
  if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
    fprintf(stderr, "pier-tests: WSAStartup failed\n");
    exit(EXIT_FAILURE);
  }
#endif
#ifdef SIGPIPE
  signal(SIGPIPE, SIG_DFL);
#endif
}

pier_os_socket t_os_connect(const struct sockaddr_storage *addr, size_t len) {
  pier_os_socket h = socket(addr->ss_family, SOCK_STREAM, 0);
  ck_assert_msg(h != PIER_INVALID_SOCKET, "socket() failed: %s",
                t_os_strerror(t_os_errno()));
  int rc = connect(h, (const struct sockaddr *)addr, (socklen_t)len);
  ck_assert_msg(rc == 0, "connect() failed: %s", t_os_strerror(t_os_errno()));
  return h;
}

int t_os_close(pier_os_socket h) {
#ifdef _WIN32
  return closesocket(h) == 0 ? 0 : -1;
#else
  return close(h);
#endif
}

int t_os_errno(void) {
#ifdef _WIN32
  return WSAGetLastError();
#else
  return errno;
#endif
}

const char *t_os_strerror(int err) {
#ifdef _WIN32
  static char buf[256];
  DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM |
                               FORMAT_MESSAGE_IGNORE_INSERTS,
                           NULL, (DWORD)err, 0, buf, sizeof buf, NULL);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
  if (n == 0) snprintf(buf, sizeof buf, "Winsock error %d", err);
  return buf;
#else
  return strerror(err);
#endif
}

long t_os_recv(pier_os_socket h, void *buf, size_t len) {
#ifdef _WIN32
  return (long)recv(h, (char *)buf, (int)len, 0);
#else
  return (long)recv(h, buf, len, 0);
#endif
}

long t_os_send(pier_os_socket h, const void *buf, size_t len) {
#ifdef _WIN32
  return (long)send(h, (const char *)buf, (int)len, 0);
#else
  return (long)send(h, buf, len, 0);
#endif
}

/* How long t_os_read / t_os_write wait for the socket to move. */
enum { T_OS_IO_MS = 5000 };

#ifdef _WIN32
/*
 * ReadFile / WriteFile on a socket that pier opened overlapped and tied to
 * its loop's completion port (maybe with FILE_SKIP_COMPLETION_PORT_ON_
 * SUCCESS).  The call must be overlapped too, and its completion must not
 * reach pier's port, where pier would take our OVERLAPPED for one of its
 * own: an event with the low-order bit set in hEvent keeps the packet out
 * of the port, and the event itself says when the call is done.
 */
static long os_file_io(pier_os_socket h, void *buf, size_t len, int writing) {
  OVERLAPPED ov;
  DWORD n = 0, err = 0;
  DWORD want = len > 0x40000000u ? 0x40000000u : (DWORD)len;
  HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (!ev) return -1;
  memset(&ov, 0, sizeof ov);
  ov.hEvent = (HANDLE)((ULONG_PTR)ev | 1);
  BOOL ok = writing ? WriteFile((HANDLE)h, buf, want, NULL, &ov)
                  : ReadFile((HANDLE)h, buf, want, NULL, &ov);
  if (!ok && GetLastError() != ERROR_IO_PENDING) {
    err = GetLastError();
  } else {
    int late = WaitForSingleObject(ev, T_OS_IO_MS) != WAIT_OBJECT_0;
    if (late) {
      /* ov lives on this stack: the call must be over before we return. */
      CancelIoEx((HANDLE)h, &ov);
      WaitForSingleObject(ev, INFINITE);
    }
    if (!GetOverlappedResult((HANDLE)h, &ov, &n, FALSE))
      err = late ? WSAETIMEDOUT : GetLastError();
  }
  CloseHandle(ev);
  if (err) {
    WSASetLastError((int)err);
    return -1;
  }
  return (long)n;
}
#else
/* Wait until h is ready for events (poll); 0 after T_OS_IO_MS. */
static int os_wait(pier_os_socket h, short events) {
  struct pollfd p;
  int rc;
  p.fd = h;
  p.events = events;
  while ((rc = poll(&p, 1, T_OS_IO_MS)) < 0 && errno == EINTR) {
  }
  return rc > 0;
}

/* read() or write() on a maybe non-blocking descriptor, as one blocking
   call: pier keeps its descriptors O_NONBLOCK. */
static long os_file_io(pier_os_socket h, void *buf, size_t len, int writing) {
  for (;;) {
    ssize_t n = writing ? write(h, buf, len) : read(h, buf, len);
    if (n >= 0) return (long)n;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (!os_wait(h, writing ? POLLOUT : POLLIN)) {
      errno = ETIMEDOUT;
      return -1;
    }
  }
}
#endif

long t_os_read(pier_os_socket h, void *buf, size_t len) {
  return os_file_io(h, buf, len, 0);
}

long t_os_write(pier_os_socket h, const void *buf, size_t len) {
  /* The buffer is only read from; the shared helper takes void *. */
  return os_file_io(h, (void *)(uintptr_t)buf, len, 1);
}

int t_os_set_rcvtimeo(pier_os_socket h, int ms) {
#ifdef _WIN32
  DWORD tv = (DWORD)ms;
#else
  struct timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
#endif
  return setsockopt(h, SOL_SOCKET, SO_RCVTIMEO, (const char *)&tv, sizeof tv);
}

int t_os_setlinger0(pier_os_socket h) {
  struct linger lg;
  lg.l_onoff = 1;
  lg.l_linger = 0;
  return setsockopt(h, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg);
}

int t_os_err_is_conn_lost(int err) {
#ifdef _WIN32
  return err == WSAECONNRESET || err == WSAECONNREFUSED ||
         err == WSAECONNABORTED || err == WSAESHUTDOWN;
#else
  return err == ECONNRESET || err == ECONNREFUSED || err == ECONNABORTED ||
         err == EPIPE;
#endif
}

int t_os_has_option(int family, int type, int opt) {
  /* The OS's own names; Winsock's keep-alive ones are missing from older
     mingw-w64 headers (ws2ipdef.h / mstcpip.h values). */
#ifdef _WIN32
  enum { W_TCP_KEEPIDLE = 3, W_TCP_KEEPCNT = 16, W_TCP_KEEPINTVL = 17 };
#  define T_TCP_KEEPIDLE W_TCP_KEEPIDLE
#  define T_TCP_KEEPINTVL W_TCP_KEEPINTVL
#  define T_TCP_KEEPCNT W_TCP_KEEPCNT
#else
#  if defined(TCP_KEEPIDLE)
#    define T_TCP_KEEPIDLE TCP_KEEPIDLE
#  elif defined(TCP_KEEPALIVE)
#    define T_TCP_KEEPIDLE TCP_KEEPALIVE
#  endif
#  ifdef TCP_KEEPINTVL
#    define T_TCP_KEEPINTVL TCP_KEEPINTVL
#  endif
#  ifdef TCP_KEEPCNT
#    define T_TCP_KEEPCNT TCP_KEEPCNT
#  endif
#endif
  int level = -1, name = -1, value = 10, ok;
  switch (opt) {
#ifdef T_TCP_KEEPIDLE
  case PIER_SO_KEEPIDLE: level = IPPROTO_TCP; name = T_TCP_KEEPIDLE; break;
#endif
#ifdef T_TCP_KEEPINTVL
  case PIER_SO_KEEPINTVL: level = IPPROTO_TCP; name = T_TCP_KEEPINTVL; break;
#endif
#ifdef T_TCP_KEEPCNT
  case PIER_SO_KEEPCNT: level = IPPROTO_TCP; name = T_TCP_KEEPCNT; break;
#endif
  case PIER_SO_TOS:
    value = 0x20;
    if (family == AF_INET) {
      level = IPPROTO_IP;
      name = IP_TOS;
    }
#ifdef IPV6_TCLASS
    if (family == AF_INET6) {
      level = IPPROTO_IPV6;
      name = IPV6_TCLASS;
    }
#endif
    break;
  default:
    break;
  }
  if (level < 0) return 0;
  pier_os_socket h = socket(family, type, 0);
  if (h == PIER_INVALID_SOCKET) return 0;
  ok = setsockopt(h, level, name, (const char *)&value, sizeof value) == 0;
  t_os_close(h);
  return ok;
}

int t_os_handle_is_open(pier_os_socket h) {
#ifdef _WIN32
  /* A closed socket fails getsockopt with WSAENOTSOCK; a non-socket
     handle (t_os_nonsocket_open) still has handle information. */
  int type;
  int len = sizeof type;
  DWORD flags;
  if (getsockopt(h, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0) return 1;
  return GetHandleInformation((HANDLE)h, &flags) != 0;
#else
  return fcntl(h, F_GETFD) != -1 || errno != EBADF;
#endif
}

pier_os_socket t_os_nonsocket_open(void) {
#ifdef _WIN32
  HANDLE e = CreateEventA(NULL, TRUE, FALSE, NULL);
  ck_assert_msg(e != NULL, "CreateEvent failed: %lu",
                (unsigned long)GetLastError());
  return (pier_os_socket)e;
#else
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  close(fds[1]);
  return fds[0];
#endif
}

void t_os_nonsocket_close(pier_os_socket h) {
#ifdef _WIN32
  CloseHandle((HANDLE)h);
#else
  close(h);
#endif
}

/* ------------------------------------------------------------------ */
/* protocols, waiting                                                  */
/* ------------------------------------------------------------------ */

int t_protos_available(const char *const *wish, int n, const char **out) {
  int k = 0;
  for (int i = 0; i < n; i++)
    if (pier_protocol_find(wish[i]) != NULL) out[k++] = wish[i];
  return k;
}

int t_wait_flag(volatile int *flag, int timeout_ms) {
  uint64_t until = t_now_ms() + (uint64_t)timeout_ms;
  while (!T_FLAG(flag) && t_now_ms() < until) t_sleep_ms(2);
  return T_FLAG(flag) != 0;
}

/* ------------------------------------------------------------------ */
/* byte pattern                                                        */
/* ------------------------------------------------------------------ */

/* splitmix64-style mix of (seed, offset): no small period. */
static uint8_t pattern_byte(uint64_t seed, size_t i) {
  uint64_t z = (uint64_t)i + seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  return (uint8_t)(z ^ (z >> 31));
}

void t_fill(void *buf, size_t len, uint64_t seed, size_t offset) {
  uint8_t *p = buf;
  for (size_t i = 0; i < len; i++) p[i] = pattern_byte(seed, offset + i);
}

size_t t_verify(const void *buf, size_t len, uint64_t seed, size_t offset) {
  const uint8_t *p = buf;
  for (size_t i = 0; i < len; i++)
    if (p[i] != pattern_byte(seed, offset + i)) return i;
  return (size_t)-1;
}

/* ------------------------------------------------------------------ */
/* clock, sleep, callbacks                                             */
/* ------------------------------------------------------------------ */

uint64_t t_now_ms(void) {
#ifdef _WIN32
  /* Not GetTickCount64: it moves in steps of up to 16 ms (under Wine a
     30 ms Sleep can read as 16 ms), too coarse for the timing checks. */
  static LARGE_INTEGER freq;
  LARGE_INTEGER now;
  if (freq.QuadPart == 0) QueryPerformanceFrequency(&freq);
  QueryPerformanceCounter(&now);
  return (uint64_t)(now.QuadPart / freq.QuadPart * 1000 +
                    now.QuadPart % freq.QuadPart * 1000 / freq.QuadPart);
#else
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
#endif
}

void t_sleep_ms(int ms) {
#ifdef _WIN32
  Sleep((DWORD)ms);
#else
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
#endif
}

void t_count_cb(pier_op *op, int status) {
  (void)status;
  (*(int *)op->data)++;
}

int t_under_wine(void) {
#ifdef _WIN32
  HMODULE nt = GetModuleHandleA("ntdll.dll");
  return nt && GetProcAddress(nt, "wine_get_version") != NULL;
#else
  return 0;
#endif
}
