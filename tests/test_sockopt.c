/* SPDX-License-Identifier: MIT */
/*
 * tests/test_sockopt.c - portable socket options: every PIER_SO_* set and
 * read back on the protocols it belongs to, read-only SO_TYPE / SO_ERROR,
 * raw pass-through agreeing with the portable names, and the error codes
 * for options a protocol lacks, unknown option numbers, bad values and
 * NULL pointers.
 */
#include "helpers.h"

#include <string.h>

typedef struct fixture { pier_loop *loop; pier_socket *s; int closed; } fixture;

static void close_count_cb(pier_socket *s) {
  (*(int *)pier_socket_get_data(s))++;
}

static void fx_open(fixture *f, const char *proto) {
  f->loop = t_loop_new();
  f->s = NULL;
  f->closed = 0;
  T_OK(pier_socket_open(f->loop, pier_protocol_find(proto), 0, &f->s));
  pier_socket_set_data(f->s, &f->closed);
}

static void fx_close(fixture *f) {
  T_OK(pier_close(f->s, close_count_cb));
  t_run_until(f->loop, &f->closed, 2000);
  t_loop_free(f->loop);
}

/* Set opt to each value in turn and read back exactly that value. */
static void set_get(pier_socket *s, int opt, const int *values, int n) {
  for (int i = 0; i < n; i++) {
    int got = -12345;
    int rc = pier_setsockopt(s, opt, values[i]);
    ck_assert_msg(rc == 0, "%s: setsockopt(%d, %d) returned %s",
                  pier_socket_protocol(s)->name, opt, values[i],
                  pier_err_name(rc));
    T_OK(pier_getsockopt(s, opt, &got));
    ck_assert_msg(got == values[i], "%s: option %d: set %d, got %d",
                  pier_socket_protocol(s)->name, opt, values[i], got);
  }
}

static const int bools[] = {1, 0, 1};

/* ------------------------------------------------------------------ */
/* boolean and integer options                                         */
/* ------------------------------------------------------------------ */

typedef struct bool_case { const char *proto; int opt; } bool_case;
static const bool_case bool_cases[] = {
  {"tcp4", PIER_SO_NODELAY},   {"tcp6", PIER_SO_NODELAY},
  {"tcp4", PIER_SO_KEEPALIVE}, {"tcp4", PIER_SO_REUSEADDR},
  {"udp4", PIER_SO_REUSEADDR}, {"tcp6", PIER_SO_V6ONLY},
  {"udp6", PIER_SO_V6ONLY},    {"udp4", PIER_SO_BROADCAST},
  {"tcp4", PIER_SO_OOBINLINE},
};
#define NBOOL (int)(sizeof bool_cases / sizeof bool_cases[0])

START_TEST(boolean_option_set_then_get_round_trips) {
  fixture f;
  fx_open(&f, bool_cases[_i].proto);
  set_get(f.s, bool_cases[_i].opt, bools, 3);
  fx_close(&f);
}
END_TEST

/*
 * set_get where the OS has the option (t_os_has_option); where it lacks
 * it, pier answers PIER_ENOPROTOOPT and changes nothing (pier.h).
 */
/* The iocp provider sets the keep-alive timings with SIO_KEEPALIVE_VALS
   where Winsock lacks the options (backends/iocp/keepalive.c). */
static int provider_emulates(pier_socket *s, int opt) {
  const char *b = pier_loop_backend(pier_socket_loop(s));
  return strcmp(b, "iocp") == 0 &&
         (opt == PIER_SO_KEEPIDLE || opt == PIER_SO_KEEPINTVL);
}

static void set_get_if_os_has(pier_socket *s, int opt, const int *values,
                              int n) {
  const pier_protocol_info *p = pier_socket_protocol(s);
  if (t_os_has_option(p->family, p->socktype, opt) ||
      provider_emulates(s, opt)) {
    set_get(s, opt, values, n);
    return;
  }
  int rc = pier_setsockopt(s, opt, values[0]);
  ck_assert_msg(rc == PIER_ENOPROTOOPT,
                "%s: option %d, which the OS lacks, set: %s (want "
                "ENOPROTOOPT)", p->name, opt, pier_err_name(rc));
}

/* Timings set before keep-alive is switched on hold once it is. */
START_TEST(keepalive_timings_before_keepalive_on) {
  fixture f;
  fx_open(&f, "tcp4");
  const pier_protocol_info *p = pier_socket_protocol(f.s);
  if (t_os_has_option(p->family, p->socktype, PIER_SO_KEEPIDLE) ||
      provider_emulates(f.s, PIER_SO_KEEPIDLE)) {
    int v = 0;
    T_OK(pier_setsockopt(f.s, PIER_SO_KEEPALIVE, 0));
    T_OK(pier_setsockopt(f.s, PIER_SO_KEEPIDLE, 45));
    T_OK(pier_setsockopt(f.s, PIER_SO_KEEPALIVE, 1));
    T_OK(pier_getsockopt(f.s, PIER_SO_KEEPIDLE, &v));
    ck_assert_int_eq(v, 45);
    T_OK(pier_getsockopt(f.s, PIER_SO_KEEPALIVE, &v));
    ck_assert_int_eq(v, 1);
  }
  fx_close(&f);
}
END_TEST

START_TEST(keepalive_timing_options_round_trip) {
  static const int idle[] = {30, 120}, intvl[] = {5, 17}, cnt[] = {4, 9};
  fixture f;
  fx_open(&f, "tcp4");
  T_OK(pier_setsockopt(f.s, PIER_SO_KEEPALIVE, 1));
  set_get_if_os_has(f.s, PIER_SO_KEEPIDLE, idle, 2);
  set_get_if_os_has(f.s, PIER_SO_KEEPINTVL, intvl, 2);
  set_get_if_os_has(f.s, PIER_SO_KEEPCNT, cnt, 2);
  fx_close(&f);
}
END_TEST

START_TEST(buffer_sizes_are_at_least_what_was_asked) {
  static const int opts[2] = {PIER_SO_RCVBUF, PIER_SO_SNDBUF};
  fixture f;
  fx_open(&f, "tcp4");
  for (int i = 0; i < 2; i++) {
    int got = 0;
    T_OK(pier_setsockopt(f.s, opts[i], 65536));
    T_OK(pier_getsockopt(f.s, opts[i], &got));
    ck_assert_int_ge(got, 65536); /* the OS may double it */
    ck_assert_int_le(got, 4 * 65536);
  }
  fx_close(&f);
}
END_TEST

START_TEST(linger_seconds_then_off) {
  static const int values[] = {5, -1, 0, -1};
  fixture f;
  int got = 0;
  fx_open(&f, "tcp4");
  T_OK(pier_getsockopt(f.s, PIER_SO_LINGER, &got));
  ck_assert_int_eq(got, -1); /* off by default */
  set_get(f.s, PIER_SO_LINGER, values, 4);
  fx_close(&f);
}
END_TEST

START_TEST(reuseport_round_trips_where_the_os_has_it) {
  fixture f;
  fx_open(&f, "tcp4");
#ifdef SO_REUSEPORT
  set_get(f.s, PIER_SO_REUSEPORT, bools, 3);
#else
  T_ERR(pier_setsockopt(f.s, PIER_SO_REUSEPORT, 1), PIER_ENOPROTOOPT);
#endif
  fx_close(&f);
}
END_TEST

START_TEST(tos_round_trips_on_tcp4_and_tcp6) {
  static const int values[] = {0x20, 0xb8, 0};
  static const char *const protos[] = {"tcp4", "tcp6"};
  for (int i = 0; i < 2; i++) {
    fixture f;
    fx_open(&f, protos[i]);
    set_get_if_os_has(f.s, PIER_SO_TOS, values, 3);
    T_ERR(pier_setsockopt(f.s, PIER_SO_TOS, 256), PIER_EINVAL);
    fx_close(&f);
  }
}
END_TEST

/* ------------------------------------------------------------------ */
/* read-only options, raw pass-through                                 */
/* ------------------------------------------------------------------ */

START_TEST(so_type_reports_stream_or_dgram) {
  fixture f;
  int type = -1;
  fx_open(&f, "tcp4");
  T_OK(pier_getsockopt(f.s, PIER_SO_TYPE, &type));
  ck_assert_int_eq(type, SOCK_STREAM);
  fx_close(&f);
  fx_open(&f, "udp6");
  T_OK(pier_getsockopt(f.s, PIER_SO_TYPE, &type));
  ck_assert_int_eq(type, SOCK_DGRAM);
  fx_close(&f);
}
END_TEST

START_TEST(so_error_is_0_on_a_fresh_socket) {
  fixture f;
  int err = -12345;
  fx_open(&f, "tcp4");
  T_OK(pier_getsockopt(f.s, PIER_SO_ERROR, &err));
  ck_assert_int_eq(err, 0);
  fx_close(&f);
}
END_TEST

START_TEST(read_only_options_refuse_set) {
  fixture f;
  int type = -1;
  fx_open(&f, "tcp4");
  int rc = pier_setsockopt(f.s, PIER_SO_TYPE, SOCK_DGRAM);
  ck_assert_msg(rc == PIER_EINVAL || rc == PIER_ENOPROTOOPT,
                "set SO_TYPE returned %d (%s)", rc, pier_err_name(rc));
  rc = pier_setsockopt(f.s, PIER_SO_ERROR, 0);
  ck_assert_msg(rc == PIER_EINVAL || rc == PIER_ENOPROTOOPT,
                "set SO_ERROR returned %d (%s)", rc, pier_err_name(rc));
  T_OK(pier_getsockopt(f.s, PIER_SO_TYPE, &type));
  ck_assert_int_eq(type, SOCK_STREAM);
  fx_close(&f);
}
END_TEST

START_TEST(raw_keepalive_agrees_with_portable_option) {
  fixture f;
  int raw = 0, portable = -1;
  size_t len = sizeof raw;
  fx_open(&f, "tcp4");
  T_OK(pier_setsockopt(f.s, PIER_SO_KEEPALIVE, 1));
  T_OK(pier_getsockopt_raw(f.s, SOL_SOCKET, SO_KEEPALIVE, &raw, &len));
  /* The OS's own size comes back: an int on POSIX, one byte (a BOOLEAN)
     from Winsock.  raw was 0, so either way it is non-zero now. */
  ck_assert_msg(len == sizeof raw || len == 1, "raw SO_KEEPALIVE len %zu",
                len);
  ck_assert_int_ne(raw, 0);
  raw = 0;
  T_OK(pier_setsockopt_raw(f.s, SOL_SOCKET, SO_KEEPALIVE, &raw, sizeof raw));
  T_OK(pier_getsockopt(f.s, PIER_SO_KEEPALIVE, &portable));
  ck_assert_int_eq(portable, 0);
  fx_close(&f);
}
END_TEST

START_TEST(raw_nodelay_agrees_with_portable_option) {
  fixture f;
  int raw = 1, portable = -1;
  size_t len = sizeof raw;
  fx_open(&f, "tcp6");
  T_OK(pier_setsockopt_raw(f.s, IPPROTO_TCP, TCP_NODELAY, &raw, sizeof raw));
  T_OK(pier_getsockopt(f.s, PIER_SO_NODELAY, &portable));
  ck_assert_int_eq(portable, 1);
  T_OK(pier_setsockopt(f.s, PIER_SO_NODELAY, 0));
  T_OK(pier_getsockopt_raw(f.s, IPPROTO_TCP, TCP_NODELAY, &raw, &len));
  ck_assert_int_eq(raw, 0);
  fx_close(&f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* errors                                                              */
/* ------------------------------------------------------------------ */

START_TEST(option_the_protocol_lacks_gives_enoprotoopt) {
  fixture f;
  int v = -1;
  fx_open(&f, "tcp4");
  T_ERR(pier_setsockopt(f.s, PIER_SO_V6ONLY, 1), PIER_ENOPROTOOPT);
  T_ERR(pier_getsockopt(f.s, PIER_SO_V6ONLY, &v), PIER_ENOPROTOOPT);
  fx_close(&f);
  fx_open(&f, "udp4");
  T_ERR(pier_setsockopt(f.s, PIER_SO_NODELAY, 1), PIER_ENOPROTOOPT);
  T_ERR(pier_setsockopt(f.s, PIER_SO_KEEPIDLE, 10), PIER_ENOPROTOOPT);
  fx_close(&f);
}
END_TEST

START_TEST(unknown_option_number_gives_einval) {
  static const int bad[] = {0, -1, PIER_SO_SHED_COUNT + 1, 9999};
  fixture f;
  fx_open(&f, "tcp4");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int v = 7;
    T_ERR(pier_setsockopt(f.s, bad[i], 1), PIER_EINVAL);
    T_ERR(pier_getsockopt(f.s, bad[i], &v), PIER_EINVAL);
    ck_assert_int_eq(v, 7);
  }
  fx_close(&f);
}
END_TEST

/* Provider tuning: every provider takes the values and reads them back. */
START_TEST(provider_tuning_options_round_trip) {
  fixture f;
  int v = -1;
  fx_open(&f, "tcp4");
  T_OK(pier_getsockopt(f.s, PIER_SO_PREPOSTED_ACCEPTS, &v));
  ck_assert_int_ge(v, 1); /* a default of at least one */
  T_OK(pier_setsockopt(f.s, PIER_SO_PREPOSTED_ACCEPTS, 16));
  T_OK(pier_getsockopt(f.s, PIER_SO_PREPOSTED_ACCEPTS, &v));
  ck_assert_int_eq(v, 16);
  T_ERR(pier_setsockopt(f.s, PIER_SO_PREPOSTED_ACCEPTS, 0), PIER_EINVAL);
  T_ERR(pier_setsockopt(f.s, PIER_SO_PREPOSTED_ACCEPTS, 257), PIER_EINVAL);
  T_OK(pier_getsockopt(f.s, PIER_SO_PREPOSTED_ACCEPTS, &v));
  ck_assert_int_eq(v, 16); /* refused values changed nothing */
  T_OK(pier_setsockopt(f.s, PIER_SO_ZERO_READ, 1));
  T_OK(pier_getsockopt(f.s, PIER_SO_ZERO_READ, &v));
  ck_assert_int_eq(v, 1);
  T_OK(pier_setsockopt(f.s, PIER_SO_ZERO_READ, 0));
  T_OK(pier_getsockopt(f.s, PIER_SO_ZERO_READ, &v));
  ck_assert_int_eq(v, 0);
  fx_close(&f);
}
END_TEST

/* With zero-byte reads on, receives still deliver every byte in order. */
START_TEST(zero_read_receives_deliver_the_data) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *sv;
  t_pair(loop, "tcp4", &c, &sv);
  T_OK(pier_setsockopt(sv, PIER_SO_ZERO_READ, 1));
  enum { N = 3, SZ = 1000 };
  static char out[N * SZ], in[N * SZ];
  t_fill(out, sizeof out, 7, 0);
  int done = 0;
  pier_op rops[N], sop;
  pier_buf rb[N];
  for (int i = 0; i < N; i++) { /* three receives waiting before any data */
    memset(&rops[i], 0, sizeof rops[i]);
    rops[i].data = &done;
    rb[i] = pier_buf_init(in + i * SZ, SZ);
    T_OK(pier_recv(sv, &rops[i], &rb[i], 1, PIER_MSG_WAITALL, t_count_cb));
  }
  memset(&sop, 0, sizeof sop);
  sop.data = &done;
  pier_buf sb = pier_buf_init(out, sizeof out);
  T_OK(pier_send(c, &sop, &sb, 1, 0, t_count_cb));
  t_run_until_count(loop, &done, N + 1, 5000);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(rops[i].status, 0);
    ck_assert_uint_eq(rops[i].bytes, SZ);
  }
  ck_assert_uint_eq(t_verify(in, sizeof in, 7, 0), (size_t)-1);
  pier_close(c, NULL);
  pier_close(sv, NULL);
  t_loop_free(loop);
}
END_TEST

START_TEST(null_value_pointer_gives_einval) {
  fixture f;
  int v = 1;
  size_t len = sizeof v;
  fx_open(&f, "tcp4");
  T_ERR(pier_getsockopt(f.s, PIER_SO_NODELAY, NULL), PIER_EINVAL);
  T_ERR(pier_getsockopt(NULL, PIER_SO_NODELAY, &v), PIER_EINVAL);
  T_ERR(pier_setsockopt(NULL, PIER_SO_NODELAY, 1), PIER_EINVAL);
  T_ERR(pier_getsockopt_raw(f.s, SOL_SOCKET, SO_KEEPALIVE, NULL, &len),
        PIER_EINVAL);
  T_ERR(pier_getsockopt_raw(f.s, SOL_SOCKET, SO_KEEPALIVE, &v, NULL),
        PIER_EINVAL);
  T_ERR(pier_setsockopt_raw(f.s, SOL_SOCKET, SO_KEEPALIVE, NULL, sizeof v),
        PIER_EINVAL);
  fx_close(&f);
}
END_TEST

START_TEST(bad_boolean_or_negative_size_gives_einval) {
  fixture f;
  int v = -1;
  fx_open(&f, "tcp4");
  T_ERR(pier_setsockopt(f.s, PIER_SO_RCVBUF, -5), PIER_EINVAL);
  T_ERR(pier_setsockopt(f.s, PIER_SO_KEEPIDLE, -1), PIER_EINVAL);
  T_ERR(pier_setsockopt(f.s, PIER_SO_TOS, -2), PIER_EINVAL);
  T_OK(pier_getsockopt(f.s, PIER_SO_TOS, &v));
  ck_assert_int_eq(v, 0); /* refused sets changed nothing */
  fx_close(&f);
}
END_TEST

Suite *suite_sockopt(void) {
  Suite *s = suite_create("sockopt");
  TCase *tc = tcase_create("roundtrip");
  tcase_add_loop_test(tc, boolean_option_set_then_get_round_trips, 0, NBOOL);
  tcase_add_test(tc, keepalive_timing_options_round_trip);
  tcase_add_test(tc, keepalive_timings_before_keepalive_on);
  tcase_add_test(tc, buffer_sizes_are_at_least_what_was_asked);
  tcase_add_test(tc, linger_seconds_then_off);
  tcase_add_test(tc, reuseport_round_trips_where_the_os_has_it);
  tcase_add_test(tc, tos_round_trips_on_tcp4_and_tcp6);
  suite_add_tcase(s, tc);

  tc = tcase_create("readonly_raw");
  tcase_add_test(tc, so_type_reports_stream_or_dgram);
  tcase_add_test(tc, so_error_is_0_on_a_fresh_socket);
  tcase_add_test(tc, read_only_options_refuse_set);
  tcase_add_test(tc, raw_keepalive_agrees_with_portable_option);
  tcase_add_test(tc, raw_nodelay_agrees_with_portable_option);
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_add_test(tc, option_the_protocol_lacks_gives_enoprotoopt);
  tcase_add_test(tc, unknown_option_number_gives_einval);
  tcase_add_test(tc, provider_tuning_options_round_trip);
  tcase_add_test(tc, zero_read_receives_deliver_the_data);
  tcase_add_test(tc, null_value_pointer_gives_einval);
  tcase_add_test(tc, bad_boolean_or_negative_size_gives_einval);
  suite_add_tcase(s, tc);
  return s;
}
