/* SPDX-License-Identifier: MIT */
/*
 * tests/test_protocol.c - the protocol catalog: tcp4, tcp6, udp4, udp6 and
 * local are listed with the right family, type, protocol and capability
 * flags; pier_protocol_find; every entry opens, and the socket reports its
 * entry, loop and a valid OS handle of the right type.
 */
#include "helpers.h"

#include <string.h>

typedef struct want {
  const char *name;
  int family, socktype, protocol;
  unsigned must, must_not;
} want;

#define TCP_CAPS (PIER_CAP_STREAM | PIER_CAP_GRACEFUL_CLOSE | PIER_CAP_EXPEDITED_DATA)
#define TCP_NOT (PIER_CAP_CONNECT_DATA | PIER_CAP_DISCONNECT_DATA | \
                 PIER_CAP_MESSAGE | PIER_CAP_CONNECTIONLESS)
#define UDP_CAPS (PIER_CAP_MESSAGE | PIER_CAP_CONNECTIONLESS)
#define UDP_NOT (PIER_CAP_STREAM | PIER_CAP_CONNECT_DATA | \
                 PIER_CAP_DISCONNECT_DATA | PIER_CAP_GRACEFUL_CLOSE)

static const want wants[] = {
  {"tcp4", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_CAPS, TCP_NOT},
  {"tcp6", AF_INET6, SOCK_STREAM, IPPROTO_TCP, TCP_CAPS, TCP_NOT},
  {"udp4", AF_INET, SOCK_DGRAM, IPPROTO_UDP, UDP_CAPS, UDP_NOT},
  {"udp6", AF_INET6, SOCK_DGRAM, IPPROTO_UDP, UDP_CAPS, UDP_NOT},
  /* last: see n_wants() */
  {"local", AF_UNIX, SOCK_STREAM, 0, PIER_CAP_STREAM,
   PIER_CAP_MESSAGE | PIER_CAP_CONNECTIONLESS},
};
#define NWANTS (sizeof wants / sizeof wants[0])

/*
 * The entries every catalog must have: all of wants[] on POSIX; on
 * Windows "local" (AF_UNIX) only if the catalog lists it - Winsock's
 * AF_UNIX is recent and Wine has none, so the iocp catalog leaves it out.
 */
static size_t n_wants(void) {
#ifdef _WIN32
  if (pier_protocol_find("local") == NULL) return NWANTS - 1;
#endif
  return NWANTS;
}

START_TEST(catalog_lists_named_entries_once_with_text) {
  const pier_protocol_info *list = NULL;
  size_t n = pier_protocols(&list);
  ck_assert_uint_ge(n, n_wants());
  ck_assert_ptr_nonnull(list);
  for (size_t i = 0; i < n; i++) {
    ck_assert_ptr_nonnull(list[i].name);
    ck_assert_ptr_nonnull(list[i].description);
    ck_assert_uint_gt(strlen(list[i].description), 0);
    ck_assert_ptr_eq(pier_protocol_find(list[i].name), &list[i]);
    for (size_t j = 0; j < i; j++) ck_assert_str_ne(list[i].name, list[j].name);
  }
}
END_TEST

START_TEST(catalog_entry_has_family_type_and_caps) {
  const want *w = &wants[_i];
  const pier_protocol_info *p = pier_protocol_find(w->name);
  ck_assert_msg(p != NULL, "no catalog entry \"%s\"", w->name);
  ck_assert_str_eq(p->name, w->name);
  ck_assert_int_eq(p->family, w->family);
  ck_assert_int_eq(p->socktype, w->socktype);
  ck_assert_int_eq(p->protocol, w->protocol);
  ck_assert_msg((p->caps & w->must) == w->must,
                "%s caps 0x%x lack 0x%x", w->name, p->caps,
                w->must & ~p->caps);
  ck_assert_msg((p->caps & w->must_not) == 0, "%s caps 0x%x have 0x%x",
                w->name, p->caps, p->caps & w->must_not);
  if (p->caps & PIER_CAP_MESSAGE && p->caps & PIER_CAP_CONNECTIONLESS) {
    ck_assert_uint_gt(p->max_message, 0);
    ck_assert_uint_le(p->max_message, 65535);
  } else if (!(p->caps & PIER_CAP_MESSAGE)) {
    ck_assert_uint_eq(p->max_message, 0);
  }
}
END_TEST

START_TEST(find_unknown_or_null_gives_null) {
  ck_assert_ptr_null(pier_protocol_find(NULL));
  ck_assert_ptr_null(pier_protocol_find("nope"));
  ck_assert_ptr_null(pier_protocol_find(""));
  ck_assert_ptr_null(pier_protocol_find("tcp"));
  ck_assert_ptr_null(pier_protocol_find("tcp44"));
}
END_TEST

static void close_count_cb(pier_socket *s) {
  (*(int *)pier_socket_get_data(s))++;
}

/* The OS agrees with the catalog about the handle's type (and family). */
static void check_os_handle(pier_os_socket h, const pier_protocol_info *p) {
  int type = -1;
  socklen_t len = sizeof type;
  ck_assert_msg(h != PIER_INVALID_SOCKET, "%s: invalid handle", p->name);
  ck_assert_int_eq(getsockopt(h, SOL_SOCKET, SO_TYPE, (void *)&type, &len), 0);
  ck_assert_int_eq(type, p->socktype);
#ifdef SO_DOMAIN
  {
    int family = -1;
    len = sizeof family;
    ck_assert_int_eq(getsockopt(h, SOL_SOCKET, SO_DOMAIN, &family, &len), 0);
    ck_assert_int_eq(family, p->family);
  }
#endif
}

START_TEST(every_catalog_entry_opens_and_reports_itself) {
  const pier_protocol_info *list = NULL;
  size_t n = pier_protocols(&list);
  pier_loop *loop = t_loop_new();
  for (size_t i = 0; i < n; i++) {
    pier_socket *s = NULL;
    int closed = 0;
    int rc = pier_socket_open(loop, &list[i], 0, &s);
    ck_assert_msg(rc == 0, "open %s: %s", list[i].name, pier_err_name(rc));
    ck_assert_ptr_eq(pier_socket_protocol(s), &list[i]);
    ck_assert_ptr_eq(pier_socket_loop(s), loop);
    check_os_handle(pier_socket_handle(s), &list[i]);
    pier_socket_set_data(s, &closed);
    ck_assert_ptr_eq(pier_socket_get_data(s), &closed);
    T_OK(pier_close(s, close_count_cb));
    t_run_until(loop, &closed, 2000);
    ck_assert_int_eq(closed, 1);
  }
  t_loop_free(loop);
}
END_TEST

START_TEST(handle_of_null_is_invalid_socket) {
  ck_assert(pier_socket_handle(NULL) == PIER_INVALID_SOCKET);
}
END_TEST

Suite *suite_protocol(void) {
  Suite *s = suite_create("protocol");
  TCase *tc = tcase_create("catalog");
  tcase_add_test(tc, catalog_lists_named_entries_once_with_text);
  tcase_add_loop_test(tc, catalog_entry_has_family_type_and_caps, 0,
                      (int)n_wants());
  tcase_add_test(tc, find_unknown_or_null_gives_null);
  suite_add_tcase(s, tc);
  tc = tcase_create("open");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, every_catalog_entry_opens_and_reports_itself);
  tcase_add_test(tc, handle_of_null_is_invalid_socket);
  suite_add_tcase(s, tc);
  return s;
}
