/* SPDX-License-Identifier: MIT */
/*
 * tests/test_slowcallers.c - a slow caller holds up nobody
 * (doc/semantics.md, "Handshake bounds"): with hundreds of silent,
 * half-header, garbage (and, for TLS, ClientHello-then-silent) callers
 * connected to a msg4 or TLS listener, far more than its handshake table
 * holds, good callers arriving every 100 ms still complete their
 * handshake at once; the silent ones are still cut at the handshake
 * timeout, and the server's memory stays bounded.  Prints the p50 / p99
 * handshake latency it measured.
 */
#ifdef HAVE_CONFIG_H
#  include <config.h>
#endif
#include "kinds.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PIER_HAVE_OPENSSL
#  include <openssl/bio.h>
#  include <openssl/ssl.h>
#endif

#define TIMEOUT_MS 1000  /* the listener's handshake timeout */
#define GOOD 20          /* good callers, one every GAP_MS */
#define GAP_MS 100
#define TARGET_P99_MS 250

/* Attackers (the numbers; fewer under Wine, see attack()). */
enum { SILENT = 500, HALF = 50, GARBAGE = 20, HELLO_SILENT = 20 };

typedef struct server {
  pier_loop *loop;
  pier_socket *l;
  struct sockaddr_storage addr;
  size_t alen;
  pier_op aop;
  pier_socket *held[GOOD + 4];
  int nheld;
  pthread_t th;
} server;

static void server_accepted(pier_op *op, int status) {
  server *sv = op->data;
  if (status != 0) return;
  if (sv->nheld < (int)(sizeof sv->held / sizeof sv->held[0]))
    sv->held[sv->nheld++] = op->accepted;
  else
    pier_close(op->accepted, NULL);
  pier_accept(sv->l, &sv->aop, NULL, NULL, server_accepted);
}

static void *serve(void *arg) {
  server *sv = arg;
  pier_loop_run(sv->loop, PIER_RUN_DEFAULT);
  return NULL;
}

static void server_start(server *sv, int kind) {
  memset(sv, 0, sizeof *sv);
  sv->loop = t_loop_new();
  sv->l = t_kind_listener(sv->loop, kind, &sv->addr, &sv->alen, 4096);
  T_OK(pier_setsockopt(sv->l, PIER_SO_HANDSHAKE_TIMEOUT, TIMEOUT_MS));
  int table = 0;
  T_OK(pier_getsockopt(sv->l, PIER_SO_HANDSHAKES_MAX, &table));
  ck_assert_int_eq(table, 64);
  sv->aop.data = sv;
  T_OK(pier_accept(sv->l, &sv->aop, NULL, NULL, server_accepted));
  ck_assert_int_eq(pthread_create(&sv->th, NULL, serve, sv), 0);
}

static void server_stop(server *sv) {
  T_OK(pier_loop_stop(sv->loop));
  pthread_join(sv->th, NULL);
  for (int i = 0; i < sv->nheld; i++) T_OK(pier_close(sv->held[i], NULL));
  T_OK(pier_close(sv->l, NULL));
  t_loop_free(sv->loop);
}

/* ------------------------------------------------------------------ */
/* attackers: raw OS sockets                                           */
/* ------------------------------------------------------------------ */

/* A ClientHello, which a TLS server answers and then waits on. */
static size_t client_hello(uint8_t *out, size_t cap) {
#ifdef PIER_HAVE_OPENSSL
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL *ssl = SSL_new(ctx);
  SSL_set_bio(ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  SSL_set_connect_state(ssl);
  SSL_do_handshake(ssl);
  int n = BIO_read(SSL_get_wbio(ssl), out, (int)cap);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ck_assert_int_gt(n, 0);
  return (size_t)n;
#else
  (void)out;
  (void)cap;
  return 0;
#endif
}

typedef struct attack {
  pier_os_socket *h;
  int n;
} attack;

static void send_all(pier_os_socket h, const void *p, size_t n) {
  ck_assert_int_eq(t_os_send(h, p, n), (long)n);
}

/* Open the attackers: silent, half a header, garbage, and for TLS a
   ClientHello followed by silence. */
static void attack_open(attack *a, server *sv, int kind, int scale) {
  static const uint8_t msg_half[10] = { 'P', 'I', 'E', 'R', 1, 1, 0, 0, 0, 0 };
  static const uint8_t tls_half[3] = { 0x16, 0x03, 0x01 };
  uint8_t junk[64], hello[2048];
  memset(junk, 0xAB, sizeof junk);
  size_t hello_len = kind == T_KIND_TLS ? client_hello(hello, sizeof hello) : 0;
  int counts[4] = { SILENT / scale, HALF / scale, GARBAGE / scale,
                    kind == T_KIND_TLS ? HELLO_SILENT / scale : 0 };
  int total = counts[0] + counts[1] + counts[2] + counts[3];
  a->h = calloc((size_t)total, sizeof *a->h);
  a->n = 0;
  for (int what = 0; what < 4; what++) {
    for (int i = 0; i < counts[what]; i++) {
      pier_os_socket h = t_os_connect(&sv->addr, sv->alen);
      ck_assert_msg(h != PIER_INVALID_SOCKET, "attacker %d: %s", a->n,
                    t_os_strerror(t_os_errno()));
      a->h[a->n++] = h;
      if (what == 1 && kind == T_KIND_MSG)
        send_all(h, msg_half, sizeof msg_half);
      if (what == 1 && kind == T_KIND_TLS)
        send_all(h, tls_half, sizeof tls_half);
      if (what == 2) send_all(h, junk, sizeof junk);
      if (what == 3) send_all(h, hello, hello_len);
    }
  }
}

static void attack_close(attack *a) {
  for (int i = 0; i < a->n; i++) t_os_close(a->h[i]);
  free(a->h);
}

/* ------------------------------------------------------------------ */
/* good callers                                                        */
/* ------------------------------------------------------------------ */

typedef struct caller {
  pier_op op;
  pier_socket *s;
  uint64_t start, end;
  int done, status;
} caller;

static void caller_done(pier_op *op, int status) {
  caller *c = op->data;
  c->end = t_now_ms();
  c->status = status;
  c->done = 1;
}

static void tick(pier_timer *t) { (void)t; }

/* Run loop until time ms (a ticking timer keeps RUN_ONCE short). */
static void run_to(pier_loop *loop, uint64_t ms) {
  while (t_now_ms() < ms) pier_loop_run(loop, PIER_RUN_ONCE);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Resident memory of this process, bytes (0 where unknown, and under
   the sanitizers: AddressSanitizer's quarantine keeps every evicted
   handshake's memory resident for a while, ThreadSanitizer's shadow
   grows with it). */
static size_t rss_bytes(void) {
#if defined(__linux__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages = 0, res = 0;
  if (!f) return 0;
  if (fscanf(f, "%lu %lu", &pages, &res) != 2) res = 0;
  fclose(f);
  return (size_t)res * 4096u;
#else
  return 0;
#endif
}

/* Good callers, one every GAP_MS; their handshake latencies, sorted. */
static void good_callers(server *sv, int kind, uint64_t lat[GOOD]) {
  pier_loop *loop = t_loop_new();
  pier_timer t;
  T_OK(pier_timer_init(loop, &t));
  T_OK(pier_timer_start(&t, 5, 5, tick));
  caller c[GOOD];
  memset(c, 0, sizeof c);
  uint64_t next = t_now_ms();
  for (int i = 0; i < GOOD; i++) {
    run_to(loop, next);
    c[i].op.data = &c[i];
    c[i].s = t_kind_client(loop, kind);
    c[i].start = t_now_ms();
    T_OK(pier_connect(c[i].s, &c[i].op, T_SA(&sv->addr), sv->alen, NULL,
                      NULL, caller_done));
    next += GAP_MS;
  }
  uint64_t deadline = t_now_ms() + 4 * TIMEOUT_MS;
  for (int i = 0; i < GOOD; i++) {
    while (!c[i].done && t_now_ms() < deadline)
      pier_loop_run(loop, PIER_RUN_ONCE);
    ck_assert_msg(c[i].done, "good caller %d: no handshake after %d ms", i,
                  (int)(t_now_ms() - c[i].start));
    ck_assert_msg(c[i].status == 0, "good caller %d: %s", i,
                  pier_err_name(c[i].status));
    lat[i] = c[i].end - c[i].start;
  }
  T_OK(pier_timer_stop(&t));
  for (int i = 0; i < GOOD; i++) T_OK(pier_close(c[i].s, NULL));
  t_loop_free(loop);
  qsort(lat, GOOD, sizeof lat[0], cmp_u64);
}

/* A silent caller, once the attack is over, is cut at the timeout. */
static void silent_cut(server *sv) {
  pier_os_socket h = t_os_connect(&sv->addr, sv->alen);
  ck_assert(h != PIER_INVALID_SOCKET);
  uint64_t t0 = t_now_ms();
  ck_assert_int_eq(t_os_set_rcvtimeo(h, 3 * TIMEOUT_MS), 0);
  char b[16];
  long n = t_os_recv(h, b, sizeof b);
  uint64_t took = t_now_ms() - t0;
  int cut = n >= 0 || t_os_err_is_conn_lost(t_os_errno());
  t_os_close(h);
  ck_assert_msg(cut, "a silent caller was not cut after %d ms", (int)took);
  /* iocp looks for silent callers in its accept-first slots each second */
  ck_assert_msg(took >= TIMEOUT_MS / 2 && took <= TIMEOUT_MS + 1500,
                "a silent caller was cut after %d ms (timeout %d)", (int)took,
                TIMEOUT_MS);
}

/* The bound on p99: TARGET_P99_MS, stretched like Check's timeouts for
   slow builds (sanitizers).  Under Wine no bound is checked, only that
   every good caller gets through (good_callers): loopback alone shows
   600+ ms outliers there with 5 attackers, and how fast Wine drains a
   backlog of attackers through iocp's plain accept slots varies from run
   to run (p50 from 7 ms to 1.6 s with 114 attackers); the figures are
   printed. */
static uint64_t p99_bound(void) {
#ifdef _WIN32
  return UINT64_MAX;
#else
  const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
  int k = m ? atoi(m) : 1;
  return (uint64_t)TARGET_P99_MS * (uint64_t)(k > 1 ? k : 1);
#endif
}

START_TEST(good_callers_not_held_up) {
  static const int kinds[] = { T_KIND_MSG, T_KIND_TLS };
  int kind = kinds[_i];
  if (t_kind_skip(kind)) return;
#ifdef _WIN32
  int scale = 5; /* Wine's sockets are slow to open in the hundreds */
#else
  int scale = 1;
#endif
  server sv;
  attack a;
  uint64_t lat[GOOD];
  server_start(&sv, kind);
  size_t rss0 = rss_bytes();
  attack_open(&a, &sv, kind, scale);
  good_callers(&sv, kind, lat);
  size_t rss1 = rss_bytes();
  int shed = 0, table = 0;
  T_OK(pier_getsockopt(sv.l, PIER_SO_SHED_COUNT, &shed));
  T_OK(pier_getsockopt(sv.l, PIER_SO_HANDSHAKES_MAX, &table));
  uint64_t p50 = lat[GOOD / 2], p99 = lat[GOOD - 1];
  /* "report: " lines reach scripts/check's summary (run-providers.sh). */
  char mem[48] = "not measured here";
  if (rss0 && rss1)
    snprintf(mem, sizeof mem, "+%ld KiB", ((long)rss1 - (long)rss0) / 1024);
  printf("report: hostile %s %s: %d attackers, table %d: good callers' "
         "handshake p50 %d ms, p99 %d ms (target %d); evicted %d; "
         "memory %s\n", pier_loop_backend(sv.loop), t_kind_name(kind), a.n,
         table, (int)p50, (int)p99, TARGET_P99_MS, shed, mem);
  fflush(stdout);
  ck_assert_msg(p99 <= p99_bound(), "p99 %d ms > %d ms", (int)p99,
                (int)p99_bound());
#ifndef _WIN32
  /* Under Wine the fewer attackers (attack_open) mostly sit in iocp's
     accept-first slots, and may not overflow the table. */
  ck_assert_int_gt(shed, 0);
#endif
  /* 64 handshakes in progress cost a few MiB at most, whatever the
     number of attackers. */
  if (rss0 && rss1) ck_assert_uint_lt(rss1 > rss0 ? rss1 - rss0 : 0, 48u << 20);
  silent_cut(&sv);
  attack_close(&a);
  server_stop(&sv);
}
END_TEST

/* The table size is an option of a layered listener, with bounds; the
   shed count is every listener's. */
START_TEST(table_size_option) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t len;
  pier_socket *l = t_kind_listener(loop, T_KIND_MSG, &addr, &len, 16);
  int v = 0;
  T_OK(pier_setsockopt(l, PIER_SO_HANDSHAKES_MAX, 8));
  T_OK(pier_getsockopt(l, PIER_SO_HANDSHAKES_MAX, &v));
  ck_assert_int_eq(v, 8);
  T_ERR(pier_setsockopt(l, PIER_SO_HANDSHAKES_MAX, 0), PIER_EINVAL);
  T_ERR(pier_setsockopt(l, PIER_SO_HANDSHAKES_MAX, 65537), PIER_EINVAL);
  T_ERR(pier_setsockopt(l, PIER_SO_SHED_COUNT, 1), PIER_EINVAL);
  T_OK(pier_getsockopt(l, PIER_SO_SHED_COUNT, &v));
  ck_assert_int_eq(v, 0);
  T_OK(pier_close(l, NULL));
  /* A plain listener counts its shed callers too, and has no table. */
  l = t_kind_listener(loop, T_KIND_TCP, &addr, &len, 16);
  v = -1;
  T_OK(pier_getsockopt(l, PIER_SO_SHED_COUNT, &v));
  ck_assert_int_eq(v, 0);
  T_ERR(pier_getsockopt(l, PIER_SO_HANDSHAKES_MAX, &v), PIER_ENOPROTOOPT);
  T_ERR(pier_setsockopt(l, PIER_SO_HANDSHAKES_MAX, 8), PIER_ENOPROTOOPT);
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

Suite *suite_slowcallers(void) {
  Suite *s = suite_create("slowcallers");
  TCase *tc = tcase_create("handshakes");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, good_callers_not_held_up, 0, 2);
  tcase_add_test(tc, table_size_option);
  suite_add_tcase(s, tc);
  return s;
}
