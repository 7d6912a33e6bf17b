/* SPDX-License-Identifier: MIT */
/*
 * tests/fault.c - the seeded fault plan (fault.h).
 *
 *   1. the plan, its random sequence and the record
 *   2. the allocator
 *   3. the system calls (where the libevent provider's table is)
 *   4. install, arm
 */
#ifdef HAVE_CONFIG_H
#  include <config.h> /* PIER_HAVE_LIBEVENT */
#endif
#include "fault.h"

#include <pier.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* 1. the plan, its random sequence and the record                     */
/* ------------------------------------------------------------------ */

#define LAST 8 /* injections kept for fault_describe */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  int armed;
  fault_plan plan;
  uint64_t rng;
  fault_record rec;
  char last[LAST][64];
  unsigned nlast;             /* injections ever kept; last[nlast % LAST] */
} st;
static long live;             /* atomic: blocks allocated, not freed */

static const char *const kind_names[FK_NKINDS] = {
  "EINTR", "EAGAIN", "short", "ECONNRESET", "EPIPE",
  "EMFILE", "ENFILE", "ENOBUFS", "NULL-alloc"
};

const char *fault_kind_name(int kind) {
  return kind >= 0 && kind < FK_NKINDS ? kind_names[kind] : "?";
}

static uint64_t next_rand(uint64_t *x) { /* xorshift64* */
  *x ^= *x >> 12;
  *x ^= *x << 25;
  *x ^= *x >> 27;
  return *x * 0x2545F4914F6CDD1DULL;
}

static uint64_t seed_state(unsigned seed) {
  uint64_t x = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed << 17) ^ seed;
  return x ? x : 1;
}

void fault_plan_random(fault_plan *p, unsigned seed) {
  /* Per kind: off, rare (0.5%), some (3%) or often (10%). */
  static const unsigned levels[4] = {0, 5, 30, 100};
  uint64_t x = seed_state(seed ^ 0x51ed);
  memset(p, 0, sizeof *p);
  p->seed = seed;
  for (int k = FK_EINTR; k <= FK_SHORT; k++)
    p->permille[k] = levels[next_rand(&x) % 4];
  switch (seed % 4) {
  case 0: /* benign only */
    break;
  case 1: /* and allocation failures, rare */
    p->permille[FK_NOMEM] = 1 + (unsigned)(next_rand(&x) % 5);
    break;
  case 2: /* and one fault that ends something, rare */
    p->permille[FK_ECONNRESET + next_rand(&x) % (FK_NOMEM - FK_ECONNRESET)] =
        levels[1];
    break;
  default: /* anything */
    for (int k = FK_ECONNRESET; k < FK_NKINDS; k++)
      p->permille[k] = levels[next_rand(&x) % 4];
    p->permille[FK_NOMEM] /= 5; /* most allocations end a scenario */
  }
}

int fault_plan_benign(const fault_plan *p) {
  for (int k = FK_ECONNRESET; k < FK_NKINDS; k++)
    if (p->permille[k]) return 0;
  return p->alloc_fail_at == 0;
}

/* Keep one injection (st.mu held). */
static void note(int kind, const char *call, long fd) {
  st.rec.injected[kind]++;
  snprintf(st.last[st.nlast++ % LAST], sizeof st.last[0], "%s %ld: %s",
           call, fd, kind_names[kind]);
}

fault_record fault_record_get(void) {
  pthread_mutex_lock(&mu);
  fault_record r = st.rec;
  pthread_mutex_unlock(&mu);
  r.live = __atomic_load_n(&live, __ATOMIC_SEQ_CST);
  return r;
}

void fault_describe(char *buf, size_t len) {
  pthread_mutex_lock(&mu);
  size_t at = (size_t)snprintf(buf, len, "%lu calls, %lu allocations;",
                               st.rec.calls, st.rec.allocs);
  for (int k = 0; k < FK_NKINDS && at < len; k++)
    if (st.rec.injected[k])
      at += (size_t)snprintf(buf + at, len - at, " %s x%lu", kind_names[k],
                             st.rec.injected[k]);
  unsigned first = st.nlast > LAST ? st.nlast - LAST : 0;
  if (at < len && st.nlast)
    at += (size_t)snprintf(buf + at, len - at, "; last:");
  for (unsigned i = first; i < st.nlast && at < len; i++)
    at += (size_t)snprintf(buf + at, len - at, " [%s]", st.last[i % LAST]);
  pthread_mutex_unlock(&mu);
}

/* ------------------------------------------------------------------ */
/* 2. the allocator                                                    */
/* ------------------------------------------------------------------ */

/* Should this allocation fail?  Counts it while armed. */
static int alloc_fails(void) {
  int fail = 0;
  pthread_mutex_lock(&mu);
  if (__atomic_load_n(&st.armed, __ATOMIC_SEQ_CST)) {
    st.rec.allocs++;
    if (st.plan.alloc_fail_at > 0)
      fail = (long)st.rec.allocs == st.plan.alloc_fail_at;
    else
      fail = next_rand(&st.rng) % 1000 < st.plan.permille[FK_NOMEM];
    if (fail) note(FK_NOMEM, "alloc", (long)st.rec.allocs);
  }
  pthread_mutex_unlock(&mu);
  return fail;
}

static void live_add(long d) {
  __atomic_add_fetch(&live, d, __ATOMIC_SEQ_CST);
}

static void *f_malloc(size_t n) {
  if (alloc_fails()) return NULL;
  void *p = malloc(n);
  if (p) live_add(1);
  return p;
}

static void *f_calloc(size_t count, size_t n) {
  if (alloc_fails()) return NULL;
  void *p = calloc(count, n);
  if (p) live_add(1);
  return p;
}

/* A failed realloc leaves ptr as it was, as realloc does. */
static void *f_realloc(void *ptr, size_t n) {
  if (!ptr) return f_malloc(n);
  if (alloc_fails()) return NULL;
  return realloc(ptr, n);
}

static void f_free(void *ptr) {
  if (!ptr) return;
  live_add(-1);
  free(ptr);
}

static const pier_allocator fault_allocator = {f_malloc, f_realloc, f_calloc,
                                               f_free};

/* ------------------------------------------------------------------ */
/* 3. the system calls                                                 */
/* ------------------------------------------------------------------ */

#if PIER_HAVE_LIBEVENT

#include <errno.h>
#include <poll.h>
#include <pier/spi.h>
#include <sys/socket.h>
#include <sys/types.h>

int fault_have_syscalls(void) { return 1; }

/* Does the armed plan inject one of kinds[0..n) into this call?  The
   kind, or -1; the call is counted and the injection kept. */
static int decide(const char *call, long fd, const int *kinds, int n) {
  int hit = -1;
  pthread_mutex_lock(&mu);
  if (__atomic_load_n(&st.armed, __ATOMIC_SEQ_CST)) {
    st.rec.calls++;
    for (int i = 0; i < n && hit < 0; i++)
      if (next_rand(&st.rng) % 1000 < st.plan.permille[kinds[i]])
        hit = kinds[i];
    if (hit >= 0) note(hit, call, fd);
  }
  pthread_mutex_unlock(&mu);
  return hit;
}

static const int err_of[FK_NKINDS] = {
  [FK_EINTR] = EINTR, [FK_EAGAIN] = EAGAIN, [FK_ECONNRESET] = ECONNRESET,
  [FK_EPIPE] = EPIPE, [FK_EMFILE] = EMFILE, [FK_ENFILE] = ENFILE,
  [FK_ENOBUFS] = ENOBUFS,
};

/* The OS's own functions, as the table held them at install. */
static struct {
  ssize_t (*recvmsg)(int, struct msghdr *, int);
  ssize_t (*sendmsg)(int, const struct msghdr *, int);
  ssize_t (*recv)(int, void *, size_t, int);
  ssize_t (*send)(int, const void *, size_t, int);
  int (*accept)(int, struct sockaddr *, socklen_t *);
  int (*accept4)(int, struct sockaddr *, socklen_t *, int);
  int (*socket)(int, int, int);
  int (*connect)(int, const struct sockaddr *, socklen_t);
  int (*eventfd)(unsigned, int);
  int (*pipe)(int[2]);
  int (*poll)(struct pollfd *, nfds_t, int);
} os;

static int is_stream(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
         type == SOCK_STREAM;
}

/* -1 with errno for kind k. */
static int fail_with(int k) {
  errno = err_of[k];
  return -1;
}

/* A reset or a broken pipe on fd: the connection really ends (shut down
   both ways, outside the table), so that the peer sees it end as it
   would, and later calls on fd fail for real. */
static int connection_lost(int fd, int k) {
  shutdown(fd, SHUT_RDWR);
  return fail_with(k);
}

/* The error of kind k on a stream transfer. */
static int transfer_error(int fd, int k) {
  return k == FK_ECONNRESET || k == FK_EPIPE ? connection_lost(fd, k)
                                             : fail_with(k);
}

static const int recv_stream[] = {FK_EINTR, FK_EAGAIN, FK_SHORT, FK_ECONNRESET};
static const int send_stream[] = {FK_EINTR, FK_EAGAIN, FK_SHORT, FK_ECONNRESET,
                                  FK_EPIPE, FK_ENOBUFS};
static const int recv_dgram[] = {FK_EINTR, FK_EAGAIN};
static const int send_dgram[] = {FK_EINTR, FK_EAGAIN, FK_ENOBUFS};
static const int accept_kinds[] = {FK_EINTR, FK_EAGAIN, FK_EMFILE, FK_ENFILE,
                                   FK_ENOBUFS};
static const int socket_kinds[] = {FK_EMFILE, FK_ENFILE, FK_ENOBUFS};
static const int fd_kinds[] = {FK_EMFILE, FK_ENFILE};
static const int connect_kinds[] = {FK_ENOBUFS};
static const int poll_kinds[] = {FK_EINTR};
#define DECIDE(call, fd, kinds) \
  decide(call, fd, kinds, (int)(sizeof kinds / sizeof kinds[0]))

/* The fault for a transfer on fd (recv: dir 0, send: dir 1), or -1. */
static int transfer_fault(const char *call, int fd, int dir) {
  if (!__atomic_load_n(&st.armed, __ATOMIC_SEQ_CST)) return -1;
  if (is_stream(fd))
    return dir ? DECIDE(call, fd, send_stream) : DECIDE(call, fd, recv_stream);
  return dir ? DECIDE(call, fd, send_dgram) : DECIDE(call, fd, recv_dgram);
}

/* msg cut down to its first byte (in *cut and *one); msg when empty. */
static struct msghdr *one_byte(const struct msghdr *msg, struct msghdr *cut,
                               struct iovec *one) {
  size_t i = 0;
  while (i < msg->msg_iovlen && msg->msg_iov[i].iov_len == 0) i++;
  if (i == msg->msg_iovlen) return (struct msghdr *)msg;
  *cut = *msg;
  *one = msg->msg_iov[i];
  one->iov_len = 1;
  cut->msg_iov = one;
  cut->msg_iovlen = 1;
  return cut;
}

static ssize_t f_recvmsg(int fd, struct msghdr *msg, int flags) {
  int k = transfer_fault("recvmsg", fd, 0);
  if (k < 0) return os.recvmsg(fd, msg, flags);
  if (k != FK_SHORT) return transfer_error(fd, k);
  struct msghdr cut;
  struct iovec one;
  struct msghdr *m = one_byte(msg, &cut, &one);
  ssize_t n = os.recvmsg(fd, m, flags);
  if (m == &cut) { /* the caller reads its own msghdr's results */
    msg->msg_flags = cut.msg_flags;
    msg->msg_namelen = cut.msg_namelen;
    msg->msg_controllen = cut.msg_controllen;
  }
  return n;
}

static ssize_t f_sendmsg(int fd, const struct msghdr *msg, int flags) {
  int k = transfer_fault("sendmsg", fd, 1);
  if (k < 0) return os.sendmsg(fd, msg, flags);
  if (k != FK_SHORT) return transfer_error(fd, k);
  struct msghdr cut;
  struct iovec one;
  return os.sendmsg(fd, one_byte(msg, &cut, &one), flags);
}

static ssize_t f_recv(int fd, void *buf, size_t len, int flags) {
  int k = transfer_fault("recv", fd, 0);
  if (k < 0) return os.recv(fd, buf, len, flags);
  if (k != FK_SHORT) return transfer_error(fd, k);
  return os.recv(fd, buf, len ? 1 : 0, flags);
}

static ssize_t f_send(int fd, const void *buf, size_t len, int flags) {
  int k = transfer_fault("send", fd, 1);
  if (k < 0) return os.send(fd, buf, len, flags);
  if (k != FK_SHORT) return transfer_error(fd, k);
  return os.send(fd, buf, len ? 1 : 0, flags);
}

static int f_accept(int fd, struct sockaddr *a, socklen_t *len) {
  int k = DECIDE("accept", fd, accept_kinds);
  return k < 0 ? os.accept(fd, a, len) : fail_with(k);
}

static int f_accept4(int fd, struct sockaddr *a, socklen_t *len, int fl) {
  int k = DECIDE("accept4", fd, accept_kinds);
  return k < 0 ? os.accept4(fd, a, len, fl) : fail_with(k);
}

static int f_socket(int domain, int type, int proto) {
  int k = DECIDE("socket", -1, socket_kinds);
  return k < 0 ? os.socket(domain, type, proto) : fail_with(k);
}

static int f_connect(int fd, const struct sockaddr *a, socklen_t len) {
  int k = DECIDE("connect", fd, connect_kinds);
  return k < 0 ? os.connect(fd, a, len) : fail_with(k);
}

static int f_eventfd(unsigned v, int fl) {
  int k = DECIDE("eventfd", -1, fd_kinds);
  return k < 0 ? os.eventfd(v, fl) : fail_with(k);
}

static int f_pipe(int p[2]) {
  int k = DECIDE("pipe", -1, fd_kinds);
  return k < 0 ? os.pipe(p) : fail_with(k);
}

static int f_poll(struct pollfd *p, nfds_t n, int ms) {
  int k = DECIDE("poll", -1, poll_kinds);
  return k < 0 ? os.poll(p, n, ms) : fail_with(k);
}

/* Each entry: its name, where the OS function goes, the wrapper. */
static const struct {
  const char *name;
  pier_syscall_fn *os;
  pier_syscall_fn fn;
} wrapped[] = {
#define W(n) {#n, (pier_syscall_fn *)&os.n, (pier_syscall_fn)f_##n}
  W(recvmsg), W(sendmsg), W(recv), W(send), W(accept), W(accept4),
  W(socket), W(connect), W(eventfd), W(pipe), W(poll),
#undef W
};

static void syscalls_install(void) {
  for (size_t i = 0; i < sizeof wrapped / sizeof wrapped[0]; i++) {
    pier_syscall_fn cur = pier_spi_syscall_get(wrapped[i].name);
    if (!cur) continue; /* not on this OS (accept4, eventfd) */
    *wrapped[i].os = cur;
    pier_spi_syscall_set(wrapped[i].name, wrapped[i].fn, NULL);
  }
}

static void syscalls_uninstall(void) { pier_spi_syscall_set(NULL, NULL, NULL); }

#else /* no table: allocation failures only */

int fault_have_syscalls(void) { return 0; }
static void syscalls_install(void) {}
static void syscalls_uninstall(void) {}

#endif

/* ------------------------------------------------------------------ */
/* 4. install, arm                                                     */
/* ------------------------------------------------------------------ */

int fault_install(void) {
  int rc = pier_set_allocator(&fault_allocator);
  if (rc) return rc;
  syscalls_install();
  return 0;
}

void fault_uninstall(void) {
  fault_disarm();
  syscalls_uninstall();
  (void)pier_set_allocator(NULL);
}

void fault_arm(const fault_plan *p) {
  pthread_mutex_lock(&mu);
  st.plan = *p;
  st.rng = seed_state(p->seed);
  memset(&st.rec, 0, sizeof st.rec);
  st.nlast = 0;
  __atomic_store_n(&st.armed, 1, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock(&mu);
}

void fault_disarm(void) { __atomic_store_n(&st.armed, 0, __ATOMIC_SEQ_CST); }
