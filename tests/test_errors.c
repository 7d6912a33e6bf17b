/* SPDX-License-Identifier: MIT */
/*
 * tests/test_errors.c - the error code list (<pier/errno.h>): codes are
 * negative and distinct, pier_strerror() and pier_err_name() agree with
 * PIER_ERRNO_MAP for every code and give the documented fallbacks for
 * codes not in the list.
 */
#include "helpers.h"

#include <string.h>

typedef struct code_entry {
  int code;
  int num;
  const char *name;
  const char *msg;
} code_entry;

static const code_entry codes[] = {
#define T_ENTRY(name, num, msg) {PIER_##name, num, #name, msg},
  PIER_ERRNO_MAP(T_ENTRY)
#undef T_ENTRY
};
#define NCODES (sizeof codes / sizeof codes[0])

START_TEST(codes_are_negative_distinct_and_match_their_number) {
  ck_assert_int_ge(NCODES, 41);
  for (size_t i = 0; i < NCODES; i++) {
    ck_assert_int_lt(codes[i].code, 0);
    ck_assert_int_eq(codes[i].code, -codes[i].num);
    for (size_t j = 0; j < i; j++) ck_assert_int_ne(codes[i].code, codes[j].code);
  }
  ck_assert_int_eq(PIER_EINVAL, -1);
  ck_assert_int_eq(PIER_EUNKNOWN, -41);
}
END_TEST

START_TEST(strerror_is_the_listed_message_nonempty_and_distinct) {
  for (size_t i = 0; i < NCODES; i++) {
    const char *m = pier_strerror(codes[i].code);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_gt(strlen(m), 0);
    ck_assert_str_eq(m, codes[i].msg);
    for (size_t j = 0; j < i; j++)
      ck_assert_str_ne(m, pier_strerror(codes[j].code));
  }
}
END_TEST

START_TEST(err_name_is_the_stringified_name) {
  for (size_t i = 0; i < NCODES; i++) {
    const char *n = pier_err_name(codes[i].code);
    ck_assert_ptr_nonnull(n);
    ck_assert_str_eq(n, codes[i].name);
  }
  ck_assert_str_eq(pier_err_name(PIER_ECANCELED), "ECANCELED");
  ck_assert_str_eq(pier_err_name(PIER_EAI_NONAME), "EAI_NONAME");
}
END_TEST

START_TEST(unknown_codes_give_documented_fallbacks) {
  static const int unknown[] = {1, 41, -45, -9999, 9999}; /* 0 is success */
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *m = pier_strerror(unknown[i]);
    const char *n = pier_err_name(unknown[i]);
    ck_assert_msg(m != NULL, "pier_strerror(%d) is NULL", unknown[i]);
    ck_assert_msg(n != NULL, "pier_err_name(%d) is NULL", unknown[i]);
    ck_assert_msg(strstr(m, "unknown error") != NULL,
                  "pier_strerror(%d) = \"%s\", want \"unknown error\" text",
                  unknown[i], m);
    ck_assert_str_eq(n, "UNKNOWN");
  }
}
END_TEST

START_TEST(strerror_and_err_name_are_static) {
  /* Same pointer on every call: static strings, nothing allocated. */
  ck_assert_ptr_eq(pier_strerror(PIER_EINVAL), pier_strerror(PIER_EINVAL));
  ck_assert_ptr_eq(pier_err_name(PIER_EBUSY), pier_err_name(PIER_EBUSY));
}
END_TEST

Suite *suite_errors(void) {
  Suite *s = suite_create("errors");
  TCase *tc = tcase_create("errors");
  tcase_add_test(tc, codes_are_negative_distinct_and_match_their_number);
  tcase_add_test(tc, strerror_is_the_listed_message_nonempty_and_distinct);
  tcase_add_test(tc, err_name_is_the_stringified_name);
  tcase_add_test(tc, unknown_codes_give_documented_fallbacks);
  tcase_add_test(tc, strerror_and_err_name_are_static);
  suite_add_tcase(s, tc);
  return s;
}
