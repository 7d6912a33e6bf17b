/* SPDX-License-Identifier: MIT */
/*
 * tests/test_share.c - sharing sockets between processes: a connected
 * socket handed to a child process that carries on its I/O, a listener
 * both processes accept on, a pier_share taken directly by the child, the
 * same between two loops of one process, and bad input.
 *
 * The child is this binary again (tests/proc.h); t_share_child runs its
 * side.  Children are always waited for and killed at a deadline (also
 * when a test fails: the checked teardown), and give up by themselves if
 * the parent goes quiet.  All traffic stays on 127.0.0.1; every byte
 * moved is checked with t_verify.
 *
 * Section map
 *   1. what the kernel allows
 *   2. the child side
 *   3. tests
 */
#include "proc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#  include <windows.h>
#else
#  include <errno.h>
#  include <fcntl.h>
#  include <unistd.h>
#  ifdef __linux__
#    include <sys/syscall.h>
#  endif
#endif

#define EXIT_MS 30000       /* a child's exit after its report, then killed */
#define XFER (1024 * 1024)  /* each way, connection handed to the child */
#define SMALL (64 * 1024)   /* each way, the other hand-offs */
#define CLIENTS 10          /* connections both processes accept */

enum { SEED_DOWN = 61, SEED_UP = 62, SEED_SMALL_DOWN = 63, SEED_SMALL_UP = 64 };

/* ------------------------------------------------------------------ */
/* 1. what the kernel allows                                           */
/* ------------------------------------------------------------------ */

/*
 * What pier_socket_from_share must answer here for process pid: the
 * kernel's own answer to pidfd_getfd on pid's descriptor 0 (the ptrace
 * access check comes before the descriptor is looked up, so EBADF still
 * means permitted).  Windows always permits it.
 */
static int expected_take(unsigned long pid) {
#if defined(_WIN32)
  (void)pid;
  return 0;
#elif defined(__linux__) && defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
  int pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
  int e = errno, fd = -1;
  if (pfd >= 0) {
    fd = (int)syscall(SYS_pidfd_getfd, pfd, 0, 0);
    e = errno;
    close(pfd);
  }
  if (fd >= 0) close(fd);
  if (fd >= 0 || (pfd >= 0 && e == EBADF)) return 0;
  return e == ENOSYS ? PIER_EOPNOTSUPP : e == EPERM ? PIER_EACCES : PIER_EUNKNOWN;
#else
  (void)pid;
  return PIER_EOPNOTSUPP;
#endif
}

/* ------------------------------------------------------------------ */
/* 2. the child side (no Check here: failures go into the report)       */
/* ------------------------------------------------------------------ */

static char cfail_text[200];

static int cfail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cfail_text, sizeof cfail_text, fmt, ap);
  va_end(ap);
  return 1;
}

#define C_OK(expr)                                                        \
  do {                                                                    \
    int c_rc_ = (expr);                                                   \
    if (c_rc_ != 0) return cfail("%s: %s", #expr, pier_err_name(c_rc_)); \
  } while (0)
#define C_CHECK(cond, ...)                  \
  do {                                      \
    if (!(cond)) return cfail(__VA_ARGS__); \
  } while (0)

static void c_tick(pier_timer *t) { (void)t; }

/* Run loop until *v >= want, at most ms: 0, or 1 on timeout. */
static int c_run(pier_loop *loop, volatile int *v, int want, int ms) {
  pier_timer tick;
  uint64_t until = t_now_ms() + (uint64_t)ms;
  pier_timer_init(loop, &tick);
  pier_timer_start(&tick, 10, 10, c_tick);
  while (*v < want && t_now_ms() < until)
    if (pier_loop_run(loop, PIER_RUN_ONCE) < 0) break;
  pier_timer_stop(&tick);
  return *v >= want ? 0 : 1;
}

/* Run the loop until its closed sockets are gone, then free it. */
static int c_loop_free(pier_loop *loop) {
  uint64_t until = t_now_ms() + 3000;
  int rc;
  while ((rc = pier_loop_free(loop)) == PIER_EBUSY && t_now_ms() < until) {
    pier_loop_run(loop, PIER_RUN_NOWAIT);
    t_sleep_ms(1);
  }
  return rc;
}

/* One overlapped transfer of n bytes on s (receive: PIER_MSG_WAITALL),
   run to its end. */
static int c_xfer(pier_loop *loop, pier_socket *s, char *buf, size_t n,
                  int receive) {
  pier_op op;
  int done = 0;
  pier_buf b = pier_buf_init(buf, n);
  memset(&op, 0, sizeof op);
  op.data = &done;
  if (receive) C_OK(pier_recv(s, &op, &b, 1, PIER_MSG_WAITALL, t_count_cb));
  else C_OK(pier_send(s, &op, &b, 1, 0, t_count_cb));
  C_CHECK(c_run(loop, &done, 1, 30000) == 0, "%s of %lu bytes timed out",
          receive ? "receive" : "send", (unsigned long)n);
  C_CHECK(op.status == 0 && op.bytes == n, "%s: status %s, %lu of %lu bytes",
          receive ? "receive" : "send", pier_err_name(op.status),
          (unsigned long)op.bytes, (unsigned long)n);
  return 0;
}

/* Receive n bytes of pattern down, check each, answer n bytes of up. */
static int c_echo_pattern(pier_loop *loop, pier_socket *s, size_t n,
                          uint64_t down, uint64_t up) {
  char *buf = malloc(n);
  C_CHECK(buf != NULL, "out of memory");
  int rc = c_xfer(loop, s, buf, n, 1);
  size_t bad = rc ? 0 : t_verify(buf, n, down, 0);
  if (rc == 0 && bad != (size_t)-1)
    rc = cfail("byte %lu of %lu from the parent differs", (unsigned long)bad,
               (unsigned long)n);
  if (rc == 0) {
    t_fill(buf, n, up, 0);
    rc = c_xfer(loop, s, buf, n, 0);
  }
  free(buf);
  return rc;
}

/* "conn": take a connected socket over the channel and carry on. */
static int child_conn(pier_loop *loop, pier_os_socket ch) {
  pier_socket *s = NULL;
  C_OK(pier_share_recv(loop, ch, 0, T_CHAN_MS, &s));
  int rc = c_echo_pattern(loop, s, XFER, SEED_DOWN, SEED_UP);
  pier_close(s, NULL);
  return rc;
}

/* "fromshare": take a pier_share's bytes and make the socket directly;
   tell the parent what pier said and what the kernel allows. */
static int child_fromshare(pier_loop *loop, pier_os_socket ch) {
  pier_share sh;
  pier_socket *s = NULL;
  C_CHECK(t_os_get(ch, sh.bytes, sizeof sh.bytes) == 0, "no share came");
#ifdef _WIN32
  int expected = expected_take(0);
#else
  int expected = expected_take((unsigned long)getppid());
#endif
  int rc = pier_socket_from_share(loop, &sh, 0, &s);
  unsigned char said[2] = { (unsigned char)-rc, (unsigned char)-expected };
  C_CHECK(t_os_put(ch, said, 2) == 0, "channel closed");
  if (rc) return 0; /* the parent judges the code */
  rc = c_echo_pattern(loop, s, SMALL, SEED_SMALL_DOWN, SEED_SMALL_UP);
  pier_close(s, NULL);
  return rc;
}

/* Answer a connection: its one byte back, after who took it ('C'). */
static int c_answer(pier_socket *s) {
  unsigned char in = 0, out[2];
  pier_op op;
  pier_buf b = pier_buf_init(&in, 1);
  memset(&op, 0, sizeof op);
  int rc = pier_recv(s, &op, &b, 1, PIER_MSG_WAITALL, NULL); /* blocking */
  if (rc == 0 && op.bytes != 1) rc = PIER_ECONNRESET;
  out[0] = 'C';
  out[1] = in;
  b = pier_buf_init(out, 2);
  if (rc == 0) rc = pier_send(s, &op, &b, 1, 0, NULL);
  pier_close(s, NULL);
  return rc;
}

/* Accept one connection on l and answer it. */
static int c_serve_one(pier_loop *loop, pier_socket *l) {
  pier_op op;
  int done = 0;
  memset(&op, 0, sizeof op);
  op.data = &done;
  C_OK(pier_accept(l, &op, NULL, NULL, t_count_cb));
  C_CHECK(c_run(loop, &done, 1, T_CHAN_MS) == 0, "no connection came");
  C_OK(op.status);
  C_OK(c_answer(op.accepted));
  return 0;
}

/* Accept and answer connections until the parent says 'Q'; the count
   served goes to the parent. */
static int c_serve_until_quit(pier_loop *loop, pier_socket *l,
                              pier_os_socket ch) {
  pier_op op;
  int done = 0, served = 0, pending = 0;
  uint64_t until = t_now_ms() + 3 * T_CHAN_MS; /* the parent's phase C */
  memset(&op, 0, sizeof op);
  op.data = &done;
  while (!t_os_readable(ch)) {
    C_CHECK(t_now_ms() < until, "the parent never said 'Q'");
    if (!pending) {
      C_OK(pier_accept(l, &op, NULL, NULL, t_count_cb));
      pending = 1;
    }
    c_run(loop, &done, 1, 10);
    if (done) {
      done = pending = 0;
      C_OK(op.status);
      C_OK(c_answer(op.accepted));
      served++;
    }
  }
  unsigned char q = 0;
  C_CHECK(t_os_get(ch, &q, 1) == 0 && q == 'Q', "expected 'Q', got 0x%02x", q);
  pier_close(l, NULL); /* a pending accept completes canceled */
  if (pending) c_run(loop, &done, 1, 5000);
  C_CHECK(!pending || (done && op.status == PIER_ECANCELED),
          "the last accept ended with %s", pier_err_name(op.status));
  unsigned char n = (unsigned char)served;
  C_CHECK(t_os_put(ch, &n, 1) == 0, "channel closed");
  return 0;
}

/* "listener": accept on a shared listener when and only when told. */
static int child_listener(pier_loop *loop, pier_os_socket ch) {
  pier_socket *l = NULL;
  unsigned char cmd = 0;
  C_OK(pier_share_recv(loop, ch, 0, T_CHAN_MS, &l));
  /* phase A: only this process accepts */
  C_CHECK(t_os_get(ch, &cmd, 1) == 0 && cmd == 'A', "expected 'A'");
  if (c_serve_one(loop, l)) return 1;
  cmd = 'a';
  C_CHECK(t_os_put(ch, &cmd, 1) == 0, "channel closed");
  /* phase B is the parent's alone; phase C: both accept */
  C_CHECK(t_os_get(ch, &cmd, 1) == 0 && cmd == 'C', "expected 'C'");
  return c_serve_until_quit(loop, l, ch);
}

static int run_scenario(const char *name, pier_loop *loop, pier_os_socket ch) {
  static const struct {
    const char *name;
    int (*fn)(pier_loop *, pier_os_socket);
  } scenarios[] = { { "conn", child_conn },
                    { "fromshare", child_fromshare },
                    { "listener", child_listener } };
  for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
    if (strcmp(name, scenarios[i].name) == 0) return scenarios[i].fn(loop, ch);
  return cfail("no scenario \"%s\"", name);
}

/* pier-tests --child NAME CHANNEL: run one scenario, report, exit. */
int t_share_child(int argc, char **argv) {
  if (argc < 2) return 2;
  pier_os_socket ch = t_child_channel(argv[1]);
  if (ch == PIER_INVALID_SOCKET || t_os_set_rcvtimeo(ch, T_CHAN_MS) != 0) return 3;
  pier_loop *loop = NULL;
  int rc = pier_loop_new(NULL, &loop);
  if (rc != 0) rc = cfail("no loop: %s", pier_err_name(rc));
  else rc = run_scenario(argv[0], loop, ch);
  if (loop && c_loop_free(loop) != 0 && rc == 0)
    rc = cfail("the loop could not be freed: something is still open");
  if (t_child_report(ch, rc, cfail_text) != 0) rc = 4;
  t_os_close(ch);
  return rc;
}

/* ------------------------------------------------------------------ */
/* 3. tests                                                            */
/* ------------------------------------------------------------------ */

/* Run loop until *v >= want; past ms, fail with what the child said. */
static void run_or_report(pier_loop *loop, t_child *c, volatile int *v, int want,
                          int ms) {
  char text[256];
  pier_timer tick;
  uint64_t until = t_now_ms() + (uint64_t)ms;
  T_OK(pier_timer_init(loop, &tick));
  T_OK(pier_timer_start(&tick, 10, 10, c_tick));
  while (*v < want) {
    ck_assert_msg(t_now_ms() < until, "timed out (%d of %d); the child says: %s",
                  *v, want, t_child_news(c, text, sizeof text));
    ck_assert_int_ge(pier_loop_run(loop, PIER_RUN_ONCE), 0);
  }
  T_OK(pier_timer_stop(&tick));
}

/* A plain client: connect, send idx, read the two-byte answer. */
static void ask_plain(t_child *c, const struct sockaddr_storage *a, size_t len,
                      unsigned char idx, unsigned char answer[2]) {
  char text[256];
  pier_os_socket h = t_os_connect(a, len);
  ck_assert_int_eq(t_os_set_rcvtimeo(h, T_CHAN_MS), 0);
  ck_assert_int_eq(t_os_put(h, &idx, 1), 0);
  int got = t_os_get(h, answer, 2) == 0;
  t_os_close(h);
  ck_assert_msg(got, "no answer for connection %u; the child says: %s",
                (unsigned)idx, t_child_news(c, text, sizeof text));
}

/* Two overlapped transfers on one socket, each checked byte for byte. */
typedef struct xfer {
  pier_op send, recv;
  char *out, *in;
  size_t n;
  int done;
} xfer;

static void xfer_start(xfer *x, pier_socket *s, size_t n, uint64_t out_seed) {
  memset(x, 0, sizeof *x);
  x->n = n;
  x->out = malloc(n);
  x->in = malloc(n);
  ck_assert(x->out && x->in);
  t_fill(x->out, n, out_seed, 0);
  memset(x->in, 0, n);
  pier_buf o = pier_buf_init(x->out, n), i = pier_buf_init(x->in, n);
  x->send.data = x->recv.data = &x->done;
  T_OK(pier_send(s, &x->send, &o, 1, 0, t_count_cb));
  T_OK(pier_recv(s, &x->recv, &i, 1, PIER_MSG_WAITALL, t_count_cb));
}

static void xfer_check(xfer *x, uint64_t in_seed) {
  T_OK(x->send.status);
  T_OK(x->recv.status);
  ck_assert_uint_eq(x->send.bytes, x->n);
  ck_assert_uint_eq(x->recv.bytes, x->n);
  size_t bad = t_verify(x->in, x->n, in_seed, 0);
  ck_assert_msg(bad == (size_t)-1, "byte %lu of %lu differs", (unsigned long)bad,
                (unsigned long)x->n);
  free(x->out);
  free(x->in);
}

/* (1) A connected socket handed to a child, which carries on its I/O;
   the source closes its copy at once. */
START_TEST(connected_socket_goes_on_in_a_child) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_child ch;
  xfer x;
  t_pair(loop, "tcp4", &c, &s);
  t_child_start(&ch, "conn");
  T_OK(pier_share_send(ch.chan, s, ch.id, T_CHAN_MS));
  T_OK(pier_close(s, NULL)); /* the child has its copy: the source lets go */
  xfer_start(&x, c, XFER, SEED_DOWN);
  run_or_report(loop, &ch, &x.done, 2, 60000);
  xfer_check(&x, SEED_UP);
  t_child_finish(&ch, EXIT_MS);
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
}
END_TEST

/* --- (2) a listener both processes accept on ---------------------------- */

/* The parent's answer on an accepted socket (blocking calls). */
static void answer_as_parent(pier_socket *s) {
  unsigned char in = 0, out[2];
  pier_op op;
  pier_buf b = pier_buf_init(&in, 1);
  memset(&op, 0, sizeof op);
  T_OK(pier_recv(s, &op, &b, 1, PIER_MSG_WAITALL, NULL));
  ck_assert_uint_eq(op.bytes, 1);
  out[0] = 'P';
  out[1] = in;
  b = pier_buf_init(out, 2);
  T_OK(pier_send(s, &op, &b, 1, 0, NULL));
  T_OK(pier_close(s, NULL));
}

/* A pier client of phase C: connect, send idx, receive the answer. */
typedef struct asker {
  pier_socket *s;
  pier_op op;
  pier_buf b;
  int step, status;
  unsigned char idx, answer[2];
  int *answered;
} asker;

static void asker_cb(pier_op *op, int status) {
  asker *k = op->data;
  int rc = status;
  if (rc == 0 && k->step == 0) {
    k->b = pier_buf_init(&k->idx, 1);
    rc = pier_send(k->s, op, &k->b, 1, 0, asker_cb);
  } else if (rc == 0 && k->step == 1) {
    k->b = pier_buf_init(k->answer, 2);
    rc = pier_recv(k->s, op, &k->b, 1, PIER_MSG_WAITALL, asker_cb);
  }
  k->step++;
  if (rc != 0 || k->step == 3) {
    k->status = rc;
    (*k->answered)++;
  }
}

/* Phase C on the parent's side: CLIENTS askers, and accepts answered
   here until every asker has its answer. */
static void serve_and_ask(pier_loop *loop, pier_socket *l,
                          const struct sockaddr_storage *a, size_t len,
                          asker *k, int *answered) {
  pier_op aop;
  pier_timer tick;
  int accepted = 0, pending = 0;
  uint64_t until = t_now_ms() + 30000;
  for (int i = 0; i < CLIENTS; i++) {
    memset(&k[i], 0, sizeof k[i]);
    k[i].idx = (unsigned char)(10 + i);
    k[i].answered = answered;
    k[i].op.data = &k[i];
    T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &k[i].s));
    T_OK(pier_connect(k[i].s, &k[i].op, (const struct sockaddr *)a, len, NULL,
                      NULL, asker_cb));
  }
  memset(&aop, 0, sizeof aop);
  aop.data = &accepted;
  T_OK(pier_timer_init(loop, &tick));
  T_OK(pier_timer_start(&tick, 5, 5, c_tick));
  while (*answered < CLIENTS) {
    ck_assert_msg(t_now_ms() < until, "only %d of %d connections answered",
                  *answered, CLIENTS);
    if (!pending) T_OK(pier_accept(l, &aop, NULL, NULL, t_count_cb));
    pending = 1;
    ck_assert_int_ge(pier_loop_run(loop, PIER_RUN_ONCE), 0);
    if (accepted) {
      accepted = pending = 0;
      T_OK(aop.status);
      answer_as_parent(aop.accepted);
    }
  }
  T_OK(pier_timer_stop(&tick));
  if (pending) T_OK(pier_cancel(&aop));
  t_run_until(loop, &accepted, 5000);
}

START_TEST(both_processes_accept_on_a_shared_listener) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage la;
  size_t llen;
  unsigned char ans[2];
  pier_socket *l = t_listener(loop, "tcp4", &la, &llen);
  t_child ch;
  t_child_start(&ch, "listener");
  T_OK(pier_share_send(ch.chan, l, ch.id, T_CHAN_MS));

  /* A: the child accepts, this process does not. */
  t_child_send(&ch, 'A');
  ask_plain(&ch, &la, llen, 1, ans);
  ck_assert_msg(ans[0] == 'C' && ans[1] == 1, "phase A answer %c%u", ans[0], ans[1]);
  t_child_expect(&ch, 'a');

  /* B: this process accepts, the child does not. */
  pier_op aop;
  int accepted = 0;
  memset(&aop, 0, sizeof aop);
  aop.data = &accepted;
  T_OK(pier_accept(l, &aop, NULL, NULL, t_count_cb));
  pier_os_socket h = t_os_connect(&la, llen);
  unsigned char idx = 2;
  ck_assert_int_eq(t_os_put(h, &idx, 1), 0);
  t_run_until(loop, &accepted, 10000);
  T_OK(aop.status);
  answer_as_parent(aop.accepted);
  ck_assert_int_eq(t_os_set_rcvtimeo(h, T_CHAN_MS), 0);
  ck_assert_int_eq(t_os_get(h, ans, 2), 0);
  ck_assert_msg(ans[0] == 'P' && ans[1] == 2, "phase B answer %c%u", ans[0], ans[1]);
  t_os_close(h);

  /* C: both accept; every connection is answered, by one of them. */
  asker k[CLIENTS];
  int answered = 0, by_child = 0;
  t_child_send(&ch, 'C');
  serve_and_ask(loop, l, &la, llen, k, &answered);
  for (int i = 0; i < CLIENTS; i++) {
    T_OK(k[i].status);
    ck_assert_uint_eq(k[i].answer[1], k[i].idx);
    ck_assert_msg(k[i].answer[0] == 'P' || k[i].answer[0] == 'C',
                  "answer from %c", k[i].answer[0]);
    by_child += k[i].answer[0] == 'C';
    T_OK(pier_close(k[i].s, NULL));
  }
  t_child_send(&ch, 'Q');
  unsigned char served = 0;
  ck_assert_int_eq(t_os_get(ch.chan, &served, 1), 0);
  ck_assert_int_eq(served, by_child);
  t_child_finish(&ch, EXIT_MS);
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

/* (3) A pier_share carried by the application and taken directly. */
START_TEST(share_taken_directly_by_a_child) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s, *mine = NULL;
  pier_share sh;
  t_child ch;
  t_pair(loop, "tcp4", &c, &s);
  t_child_start(&ch, "fromshare");
  T_OK(pier_socket_share(s, ch.id, &sh));
  /* Made for the child: this process may not take it. */
  T_ERR(pier_socket_from_share(loop, &sh, 0, &mine), PIER_EINVAL);
  ck_assert_ptr_null(mine);
  ck_assert_int_eq(t_os_put(ch.chan, sh.bytes, sizeof sh.bytes), 0);
  unsigned char said[2];
  ck_assert_msg(t_os_get(ch.chan, said, 2) == 0, "the child said nothing");
  int rc = -(int)said[0], expected = -(int)said[1];
  if (expected != 0) {
    /* The kernel refuses pidfd_getfd here: pier must say so, as documented. */
    ck_assert_msg(expected == PIER_EACCES || expected == PIER_EOPNOTSUPP,
                  "the kernel's answer (%s) is none pier documents",
                  pier_err_name(expected));
    T_ERR(rc, expected);
  } else {
    T_OK(rc);
    T_OK(pier_close(s, NULL)); /* taken: the source may let go */
    s = NULL;
    xfer x;
    xfer_start(&x, c, SMALL, SEED_SMALL_DOWN);
    run_or_report(loop, &ch, &x.done, 2, 30000);
    xfer_check(&x, SEED_SMALL_UP);
  }
  t_child_finish(&ch, EXIT_MS);
  if (s) T_OK(pier_close(s, NULL));
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
}
END_TEST

/* Run two loops of this thread until *v >= want. */
static void run_both(pier_loop *a, pier_loop *b, volatile int *v, int want,
                     int ms) {
  uint64_t until = t_now_ms() + (uint64_t)ms;
  while (*v < want) {
    ck_assert_msg(t_now_ms() < until, "timed out (%d of %d)", *v, want);
    ck_assert_int_ge(pier_loop_run(a, PIER_RUN_NOWAIT), 0);
    ck_assert_int_ge(pier_loop_run(b, PIER_RUN_NOWAIT), 0);
    t_sleep_ms(1);
  }
}

/* Take a share of s made for this process onto loop b; 0 and *out, or
   the documented refusal of this system (then *out is NULL). */
static int take_here(pier_socket *s, pier_loop *b, pier_socket **out) {
  pier_share sh;
  T_OK(pier_socket_share(s, t_self_pid(), &sh));
  int rc = pier_socket_from_share(b, &sh, 0, out);
  T_ERR(rc, expected_take(t_self_pid()));
  return rc;
}

/* (3b) Between two loops of one process: the copy is another handle on
   the same socket (on Windows one the second loop cannot tie to its
   completion port: the provider runs it evented). */
START_TEST(connection_shared_between_two_loops) {
  pier_loop *a = t_loop_new(), *b = t_loop_new();
  pier_socket *c, *s, *copy = NULL;
  t_pair(a, "tcp4", &c, &s);
  if (take_here(s, b, &copy) == 0) {
    T_OK(pier_close(s, NULL));
    xfer x, y;
    xfer_start(&x, c, SMALL, SEED_SMALL_DOWN);
    xfer_start(&y, copy, SMALL, SEED_SMALL_UP);
    x.recv.data = x.send.data = y.recv.data = y.send.data = &x.done;
    run_both(a, b, &x.done, 4, 30000);
    xfer_check(&x, SEED_SMALL_UP);
    xfer_check(&y, SEED_SMALL_DOWN);
    T_OK(pier_close(copy, NULL));
  } else {
    T_OK(pier_close(s, NULL));
  }
  T_OK(pier_close(c, NULL));
  t_loop_free(a);
  t_loop_free(b);
}
END_TEST

/* Closing a copy cancels its own pending operations and leaves the
   connection to the source. */
START_TEST(closing_a_copy_leaves_the_source_working) {
  pier_loop *a = t_loop_new(), *b = t_loop_new();
  pier_socket *c, *s, *copy = NULL;
  t_pair(a, "tcp4", &c, &s);
  if (take_here(s, b, &copy) == 0) {
    char byte = 0;
    int done = 0;
    pier_op op;
    pier_buf buf = pier_buf_init(&byte, 1);
    memset(&op, 0, sizeof op);
    op.data = &done;
    T_OK(pier_recv(copy, &op, &buf, 1, 0, t_count_cb));
    T_OK(pier_close(copy, NULL));
    run_both(a, b, &done, 1, 5000);
    T_ERR(op.status, PIER_ECANCELED);
    xfer x;
    xfer_start(&x, c, SMALL, SEED_SMALL_DOWN);
    pier_op r;
    char *in = malloc(SMALL);
    buf = pier_buf_init(in, SMALL);
    memset(&r, 0, sizeof r);
    r.data = &done;
    T_OK(pier_recv(s, &r, &buf, 1, PIER_MSG_WAITALL, t_count_cb));
    run_both(a, b, &done, 2, 10000);
    T_OK(r.status);
    ck_assert_uint_eq(t_verify(in, SMALL, SEED_SMALL_DOWN, 0), (size_t)-1);
    free(in);
    T_OK(pier_cancel(&x.recv)); /* nobody answers it */
    run_both(a, b, &x.done, 2, 5000);
    T_OK(x.send.status);
    T_ERR(x.recv.status, PIER_ECANCELED);
    free(x.out);
    free(x.in);
  }
  T_OK(pier_close(s, NULL));
  T_OK(pier_close(c, NULL));
  t_loop_free(a);
  t_loop_free(b);
}
END_TEST

START_TEST(listener_shared_between_two_loops) {
  pier_loop *a = t_loop_new(), *b = t_loop_new();
  struct sockaddr_storage la;
  size_t llen;
  pier_socket *l = t_listener(a, "tcp4", &la, &llen), *copy = NULL;
  if (take_here(l, b, &copy) == 0) {
    /* Still listening on b, with the source gone. */
    T_OK(pier_close(l, NULL));
    pier_op aop;
    int done = 0;
    memset(&aop, 0, sizeof aop);
    aop.data = &done;
    T_OK(pier_accept(copy, &aop, NULL, NULL, t_count_cb));
    pier_os_socket h = t_os_connect(&la, llen);
    unsigned char idx = 7, ans[2];
    ck_assert_int_eq(t_os_put(h, &idx, 1), 0);
    run_both(a, b, &done, 1, 10000);
    T_OK(aop.status);
    answer_as_parent(aop.accepted);
    ck_assert_int_eq(t_os_set_rcvtimeo(h, 5000), 0);
    ck_assert_int_eq(t_os_get(h, ans, 2), 0);
    ck_assert(ans[0] == 'P' && ans[1] == 7);
    t_os_close(h);
    T_OK(pier_close(copy, NULL));
  } else {
    T_OK(pier_close(l, NULL));
  }
  t_loop_free(a);
  t_loop_free(b);
}
END_TEST

/* --- (4) bad input ------------------------------------------------------ */

/* Open handles of this process: descriptors, or Windows handles. */
static long open_handles(void) {
#ifdef _WIN32
  DWORD n = 0;
  GetProcessHandleCount(GetCurrentProcess(), &n);
  return (long)n;
#else
  long n = 0;
  for (int fd = 0; fd < 4096; fd++) n += fcntl(fd, F_GETFD) != -1;
  return n;
#endif
}

static void closed_cb(pier_socket *s) {
  (*(int *)pier_socket_get_data(s))++;
}

/* Close s so that *closed counts it once it is gone; returns 1. */
static int close_counted(pier_socket *s, int *closed) {
  pier_socket_set_data(s, closed);
  T_OK(pier_close(s, closed_cb));
  return 1;
}

/* Each refusal helper returns how many sockets it closed counted. */
static int refuse_share_arguments(pier_loop *loop, pier_socket *s,
                                  int *closed) {
  pier_share sh, bad;
  pier_socket *out = NULL;
  unsigned long me = t_self_pid();
  T_ERR(pier_socket_share(NULL, me, &sh), PIER_EINVAL);
  T_ERR(pier_socket_share(s, me, NULL), PIER_EINVAL);
  T_ERR(pier_socket_share(s, 0, &sh), PIER_EINVAL);
  memset(&bad, 0, sizeof bad);
  T_ERR(pier_socket_from_share(loop, &bad, 0, &out), PIER_EINVAL);
  T_ERR(pier_socket_from_share(NULL, &bad, 0, &out), PIER_EINVAL);
  T_ERR(pier_socket_from_share(loop, NULL, 0, &out), PIER_EINVAL);
  T_ERR(pier_socket_from_share(loop, &bad, 0, NULL), PIER_EINVAL);
  /* A real share, damaged copies of it refused, then the real one taken
     (on Windows its duplicate handle would stay behind otherwise). */
  T_OK(pier_socket_share(s, me, &sh));
  T_ERR(pier_socket_from_share(loop, &sh, 1u << 7, &out), PIER_EINVAL);
  const size_t spots[] = { 0, 4, 17, 33, 300, PIER_SHARE_SIZE - 1 };
  for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
    bad = sh;
    bad.bytes[spots[i]] ^= 0x20;
    T_ERR(pier_socket_from_share(loop, &bad, 0, &out), PIER_EINVAL);
    ck_assert_ptr_null(out);
  }
  bad = sh;
  bad.bytes[4] = 2; /* a format version this pier does not know */
  T_ERR(pier_socket_from_share(loop, &bad, 0, &out), PIER_EINVAL);
  int rc = pier_socket_from_share(loop, &sh, 0, &out);
  T_ERR(rc, expected_take(me));
  return rc == 0 ? close_counted(out, closed) : 0;
}

static void refuse_channel_arguments(pier_loop *loop, pier_socket *s,
                                     pier_os_socket ch[2]) {
  pier_socket *out = NULL;
  unsigned long me = t_self_pid();
  T_ERR(pier_share_send(PIER_INVALID_SOCKET, s, me, 100), PIER_EINVAL);
  T_ERR(pier_share_send(ch[0], NULL, me, 100), PIER_EINVAL);
  T_ERR(pier_share_send(ch[0], s, me, -2), PIER_EINVAL);
  T_ERR(pier_share_send(ch[0], s, 0, 100), PIER_EINVAL);
  T_ERR(pier_share_recv(NULL, ch[1], 0, 100, &out), PIER_EINVAL);
  T_ERR(pier_share_recv(loop, PIER_INVALID_SOCKET, 0, 100, &out), PIER_EINVAL);
  T_ERR(pier_share_recv(loop, ch[1], 1u << 7, 100, &out), PIER_EINVAL);
  T_ERR(pier_share_recv(loop, ch[1], 0, -2, &out), PIER_EINVAL);
  T_ERR(pier_share_recv(loop, ch[1], 0, 100, NULL), PIER_EINVAL);
  /* Nothing comes: a timeout, on time. */
  uint64_t t0 = t_now_ms();
  T_ERR(pier_share_recv(loop, ch[1], 0, 100, &out), PIER_ETIMEDOUT);
  ck_assert_uint_ge(t_now_ms() - t0, 90);
  ck_assert_uint_lt(t_now_ms() - t0, 3000);
  ck_assert_ptr_null(out);
}

/* Garbage refused, and the sender told why; a target's refusal reported
   by pier_share_send; a channel closed half-way. */
static int refuse_channel_traffic(pier_loop *loop, pier_socket *s,
                                  pier_os_socket ch[2], int *closed) {
  unsigned char junk[PIER_SHARE_SIZE], answer = 0;
  pier_share sh;
  pier_socket *out = NULL;
  t_fill(junk, sizeof junk, 65, 0);
  ck_assert_int_eq(t_os_put(ch[0], junk, sizeof junk), 0);
  T_ERR(pier_share_recv(loop, ch[1], 0, 2000, &out), PIER_EINVAL);
  ck_assert_int_eq(t_os_get(ch[0], &answer, 1), 0);
  ck_assert_int_eq(-(int)answer, PIER_EINVAL);
  /* The target's answer is already waiting: pier_share_send returns it. */
  answer = (unsigned char)-PIER_EACCES;
  ck_assert_int_eq(t_os_put(ch[1], &answer, 1), 0);
  T_ERR(pier_share_send(ch[0], s, t_self_pid(), 2000), PIER_EACCES);
  /* What was sent is a share for this process: take it, leave nothing. */
  ck_assert_int_eq(t_os_get(ch[1], sh.bytes, sizeof sh.bytes), 0);
  int rc = pier_socket_from_share(loop, &sh, 0, &out);
  T_ERR(rc, expected_take(t_self_pid()));
  int n = rc == 0 ? close_counted(out, closed) : 0;
  /* A share's bytes alone: enough on Windows, where they name the copy;
     on POSIX the descriptor must travel with them. */
  T_OK(pier_socket_share(s, t_self_pid(), &sh));
  ck_assert_int_eq(t_os_put(ch[0], sh.bytes, sizeof sh.bytes), 0);
#ifdef _WIN32
  T_OK(pier_share_recv(loop, ch[1], 0, 2000, &out));
  n += close_counted(out, closed);
  ck_assert_int_eq(t_os_get(ch[0], &answer, 1), 0);
  ck_assert_int_eq(answer, 0);
#else
  T_ERR(pier_share_recv(loop, ch[1], 0, 2000, &out), PIER_EPROTO);
  ck_assert_int_eq(t_os_get(ch[0], &answer, 1), 0);
  ck_assert_int_eq(-(int)answer, PIER_EPROTO);
  /* Descriptors travel on AF_UNIX only: a TCP channel is refused. */
  T_ERR(pier_share_send(pier_socket_handle(s), s, t_self_pid(), 100),
        PIER_EOPNOTSUPP);
#endif
  /* Half a share, then the channel closes. */
  ck_assert_int_eq(t_os_put(ch[0], junk, 10), 0);
  t_os_close(ch[0]);
  ch[0] = PIER_INVALID_SOCKET;
  T_ERR(pier_share_recv(loop, ch[1], 0, 2000, &out), PIER_ECONNRESET);
  return n;
}

/* One round of every refusal; returns once every socket is gone. */
static void bad_input_round(pier_loop *loop) {
  pier_socket *c, *s;
  pier_os_socket ch[2];
  pier_share sh;
  int closed = 0, n = 0;
  t_pair(loop, "tcp4", &c, &s);
  t_chan_pair(ch);
  n += refuse_share_arguments(loop, s, &closed);
  refuse_channel_arguments(loop, s, ch);
  n += refuse_channel_traffic(loop, s, ch, &closed);
  t_os_close(ch[1]);
  n += close_counted(c, &closed);
  n += close_counted(s, &closed);
  T_ERR(pier_socket_share(s, t_self_pid(), &sh), PIER_EBADF); /* closing */
  t_run_until_count(loop, &closed, n, 5000);
}

/* (4) Bad input is refused with PIER_EINVAL (or the documented code), and
   a second round of it leaves no descriptor or handle behind. */
START_TEST(bad_input_is_refused_and_nothing_leaks) {
  pier_loop *loop = t_loop_new();
  bad_input_round(loop); /* the first round may warm lazy OS state up */
  long before = open_handles();
  bad_input_round(loop);
  ck_assert_int_eq(open_handles(), before);
  t_loop_free(loop);
}
END_TEST

Suite *suite_share(void) {
  Suite *s = suite_create("share");
  TCase *tc = tcase_create("share");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, NULL, t_child_reap);
  tcase_add_test(tc, bad_input_is_refused_and_nothing_leaks);
  tcase_add_test(tc, connection_shared_between_two_loops);
  tcase_add_test(tc, closing_a_copy_leaves_the_source_working);
  tcase_add_test(tc, listener_shared_between_two_loops);
  tcase_add_test(tc, connected_socket_goes_on_in_a_child);
  tcase_add_test(tc, share_taken_directly_by_a_child);
  tcase_add_test(tc, both_processes_accept_on_a_shared_listener);
  suite_add_tcase(s, tc);
  return s;
}
