/* SPDX-License-Identifier: MIT */
/*
 * tests/test_emfile.c - out of descriptors (doc/semantics.md, "Out of
 * descriptors").  A server limited to 64 descriptors (RLIMIT_NOFILE)
 * that re-posts its accept from the callback, whatever the status, is
 * called by 200 clients at once, on tcp4, msg4 and TLS listeners.  It
 * must shed the callers it cannot take (each sees a reset, none hangs),
 * report them through the log hook and count them in PIER_SO_SHED_COUNT,
 * use at most 25% of a core while out of descriptors, and serve every
 * later caller at once when descriptors come back.  Prints the CPU share
 * it measured.
 *
 * The clients run in a child process (their descriptors must not count
 * against the server's limit); the server is the test's own process,
 * which Check forks for each test, so the lowered limit dies with it.
 * Where that cannot hold (CK_FORK=no, Windows: no RLIMIT_NOFILE, and
 * Winsock has no per-process descriptor limit a test can reach) the test
 * says so and passes without running.
 */
#ifdef HAVE_CONFIG_H
#  include <config.h>
#endif
#include "kinds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#  include <errno.h>
#  include <fcntl.h>
#  include <sys/resource.h>
#  include <sys/time.h>
#  include <sys/wait.h>
#  include <unistd.h>
#endif

#define CLIENTS 200
#define LATER 20          /* callers after the descriptors are freed */
#define FD_LIMIT 64
#define CPU_MAX_PCT 25
#define OUT_MS 1000       /* the out-of-descriptors interval measured */

#ifndef _WIN32

/* ------------------------------------------------------------------ */
/* the client process                                                  */
/* ------------------------------------------------------------------ */

enum { C_PENDING, C_SERVED, C_SHED };

typedef struct client {
  pier_socket *s;
  pier_op cop, rop;
  char b[8];
  int state;
  uint64_t t0, t1;
} client;

/* What the client process tells the server, at the end. */
typedef struct report {
  int served, shed, hung;      /* the first CLIENTS callers */
  int later_served;            /* of LATER */
  int later_max_ms;            /* the slowest of them */
} report;

static void client_recvd(pier_op *op, int status) {
  client *c = op->data;
  c->state = status == 0 && op->bytes == 1 ? C_SERVED : C_SHED;
  c->t1 = t_now_ms();
}

static void client_connected(pier_op *op, int status) {
  client *c = op->data;
  if (status) {
    c->state = C_SHED;
    return;
  }
  pier_buf b = pier_buf_init(c->b, sizeof c->b);
  c->rop.data = c;
  if (pier_recv(c->s, &c->rop, &b, 1, 0, client_recvd) != 0) c->state = C_SHED;
}

static void client_start(pier_loop *loop, int kind, client *c,
                         const struct sockaddr_storage *addr, size_t len) {
  memset(c, 0, sizeof *c);
  c->s = t_kind_client(loop, kind);
  c->cop.data = c;
  c->t0 = t_now_ms();
  if (pier_connect(c->s, &c->cop, (const struct sockaddr *)addr, len, NULL,
                   NULL, client_connected) != 0)
    c->state = C_SHED;
}

static void tick(pier_timer *t) { (void)t; }

/* Run until every client of c[0..n) has an outcome or ms pass. */
static void client_wait(pier_loop *loop, client *c, int n, int ms) {
  uint64_t end = t_now_ms() + (uint64_t)ms;
  for (;;) {
    int left = 0;
    for (int i = 0; i < n; i++) left += c[i].state == C_PENDING;
    if (!left || t_now_ms() > end) return;
    pier_loop_run(loop, PIER_RUN_ONCE);
  }
}

static int read_byte(int fd) {
  char b;
  return read(fd, &b, 1) == 1 ? 0 : -1;
}

/* The client process: CLIENTS callers at once, then (when the server
   says its descriptors are free) LATER callers one after another. */
static int client_main(int kind, int rfd, int wfd,
                       const struct sockaddr_storage *addr, size_t len) {
  static client c[CLIENTS], later[LATER];
  report r;
  memset(&r, 0, sizeof r);
  pier_loop *loop = NULL;
  if (pier_loop_new(NULL, &loop) != 0) return 2;
  pier_timer t;
  pier_timer_init(loop, &t);
  pier_timer_start(&t, 10, 10, tick);
  for (int i = 0; i < CLIENTS; i++) client_start(loop, kind, &c[i], addr, len);
  client_wait(loop, c, CLIENTS, 8000);
  for (int i = 0; i < CLIENTS; i++) {
    r.served += c[i].state == C_SERVED;
    r.shed += c[i].state == C_SHED;
    r.hung += c[i].state == C_PENDING;
  }
  if (write(wfd, "1", 1) != 1 || read_byte(rfd) != 0) return 3;
  for (int i = 0; i < LATER; i++) {
    client_start(loop, kind, &later[i], addr, len);
    client_wait(loop, &later[i], 1, 3000);
    if (later[i].state != C_SERVED) continue;
    r.later_served++;
    int ms = (int)(later[i].t1 - later[i].t0);
    if (ms > r.later_max_ms) r.later_max_ms = ms;
  }
  return write(wfd, &r, sizeof r) == (ssize_t)sizeof r ? 0 : 4;
}

/* ------------------------------------------------------------------ */
/* the server                                                          */
/* ------------------------------------------------------------------ */

typedef struct conn {
  pier_socket *s;
  pier_op sop;
} conn;

typedef struct server {
  pier_loop *loop;
  pier_socket *l;
  pier_op aop;
  conn held[FD_LIMIT];
  int nheld, failures;     /* accepts that failed */
} server;

static void server_sent(pier_op *op, int status) {
  (void)op;
  (void)status;
}

static void server_accepted(pier_op *op, int status) {
  server *sv = op->data;
  if (status == 0 && sv->nheld == FD_LIMIT) {
    pier_close(op->accepted, NULL);
  } else if (status == 0) {
    conn *c = &sv->held[sv->nheld++];
    static char one[1] = { 'y' };
    pier_buf b = pier_buf_init(one, 1);
    c->s = op->accepted;
    pier_op_init(&c->sop);
    pier_send(c->s, &c->sop, &b, 1, 0, server_sent);
  } else if (status != PIER_ECANCELED) {
    sv->failures++;
  }
  /* What every template does: accept again, whatever happened. */
  if (status != PIER_ECANCELED)
    pier_accept(sv->l, &sv->aop, NULL, NULL, server_accepted);
}

/* The log hook: counts the reports of callers shed (any thread). */
static int shed_logs;

static void count_shed_log(int level, const char *message, void *ctx) {
  (void)ctx;
  if (level <= PIER_LOG_WARN && strstr(message, "shed"))
    __atomic_add_fetch(&shed_logs, 1, __ATOMIC_SEQ_CST);
}

static uint64_t cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Run the server's loop until the client process writes a byte (or ms). */
static int serve_until_byte(server *sv, int rfd, int ms) {
  uint64_t end = t_now_ms() + (uint64_t)ms;
  while (t_now_ms() < end) {
    char b;
    if (read(rfd, &b, 1) == 1) return 0;
    pier_loop_run(sv->loop, PIER_RUN_ONCE);
  }
  return -1;
}

/* Run the server's loop until t (ms). */
static void serve_to(server *sv, uint64_t t) {
  while (t_now_ms() < t) pier_loop_run(sv->loop, PIER_RUN_ONCE);
}

START_TEST(shed_and_recover) {
  int kind = _i;
  if (t_kind_skip(kind)) return;
  const char *fork_env = getenv("CK_FORK");
  if (fork_env && strcmp(fork_env, "no") == 0) {
    printf("emfile: skipped: lowering RLIMIT_NOFILE needs Check's fork\n");
    return;
  }
  server sv;
  memset(&sv, 0, sizeof sv);
  shed_logs = 0;
  pier_set_log(count_shed_log, NULL);
  sv.loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t len;
  sv.l = t_kind_listener(sv.loop, kind, &addr, &len, 512);
  int down[2], up[2];
  ck_assert_int_eq(pipe(down), 0);
  ck_assert_int_eq(pipe(up), 0);
  fflush(stdout);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(down[1]);
    close(up[0]);
    _exit(client_main(kind, down[0], up[1], &addr, len));
  }
  close(down[0]);
  close(up[1]);
  fcntl(up[0], F_SETFL, O_NONBLOCK);
  pier_timer t;
  T_OK(pier_timer_init(sv.loop, &t));
  T_OK(pier_timer_start(&t, 10, 10, tick));

  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  rl.rlim_cur = FD_LIMIT;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  sv.aop.data = &sv;
  T_OK(pier_accept(sv.l, &sv.aop, NULL, NULL, server_accepted));

  /* Out of descriptors: from the first caller shed (a layered listener
     fails no accept of the application's), OUT_MS of it. */
  uint64_t end = t_now_ms() + 8000;
  int shed = 0;
  while (!shed && t_now_ms() < end) {
    pier_loop_run(sv.loop, PIER_RUN_ONCE);
    T_OK(pier_getsockopt(sv.l, PIER_SO_SHED_COUNT, &shed));
  }
  ck_assert_msg(shed > 0, "never shed a caller (%d held, %d accepts failed)",
                sv.nheld, sv.failures);
  uint64_t c0 = cpu_us(), w0 = t_now_ms();
  serve_to(&sv, w0 + OUT_MS);
  uint64_t cpu = cpu_us() - c0, wall = t_now_ms() - w0;
  int pct = (int)(cpu / 10 / (wall ? wall : 1));
  ck_assert_int_eq(serve_until_byte(&sv, up[0], 10000), 0);
  int failures = sv.failures, held = sv.nheld;
  T_OK(pier_getsockopt(sv.l, PIER_SO_SHED_COUNT, &shed));

  /* Descriptors come back. */
  for (int i = 0; i < sv.nheld; i++) T_OK(pier_close(sv.held[i].s, NULL));
  sv.nheld = 0;
  serve_to(&sv, t_now_ms() + 50);
  ck_assert_int_eq(write(down[1], "1", 1), 1);
  report r;
  memset(&r, 0, sizeof r);
  size_t got = 0;
  end = t_now_ms() + (LATER + 2) * 3000;
  while (got < sizeof r && t_now_ms() < end) {
    ssize_t n = read(up[0], (char *)&r + got, sizeof r - got);
    if (n > 0) got += (size_t)n;
    else pier_loop_run(sv.loop, PIER_RUN_ONCE);
  }
  int wst = 0;
  waitpid(pid, &wst, 0);
  printf("emfile %s: %d held, %d accepts failed, %d shed; CPU %d%% of a core"
         " over %d ms out of descriptors; callers: %d served, %d reset, %d "
         "hung; later: %d/%d served, slowest %d ms\n",
         t_kind_name(kind), held, failures, shed, pct, (int)wall, r.served,
         r.shed, r.hung, r.later_served, LATER, r.later_max_ms);
  fflush(stdout);
  ck_assert_msg(got == sizeof r && WIFEXITED(wst) && WEXITSTATUS(wst) == 0,
                "client process failed (status %d)", wst);
  ck_assert_msg(pct <= CPU_MAX_PCT, "%d%% of a core out of descriptors", pct);
  ck_assert_int_eq(r.hung, 0);
  ck_assert_int_gt(shed, 0);
  ck_assert_int_gt(__atomic_load_n(&shed_logs, __ATOMIC_SEQ_CST), 0);
  ck_assert_int_eq(r.later_served, LATER);
  ck_assert_int_lt(r.later_max_ms, 1000);
  T_OK(pier_timer_stop(&t));
  for (int i = 0; i < sv.nheld; i++) T_OK(pier_close(sv.held[i].s, NULL));
  T_OK(pier_close(sv.l, NULL));
  t_loop_free(sv.loop);
  pier_set_log(NULL, NULL);
  close(down[1]);
  close(up[0]);
}
END_TEST

#else /* _WIN32 */

START_TEST(shed_and_recover) {
  (void)_i;
  printf("emfile: skipped: Windows has no RLIMIT_NOFILE, and Winsock no "
         "per-process descriptor limit a test can reach\n");
}
END_TEST

#endif

Suite *suite_emfile(void) {
  Suite *s = suite_create("emfile");
  TCase *tc = tcase_create("shed");
  tcase_set_timeout(tc, 90);
  tcase_add_loop_test(tc, shed_and_recover, 0, T_NKINDS);
  suite_add_tcase(s, tc);
  return s;
}
