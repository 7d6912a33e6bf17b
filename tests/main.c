/* SPDX-License-Identifier: MIT */
/*
 * tests/main.c - the pier test runner: every suite, one list.
 *
 *   pier-tests [--xml FILE] [NAME...]
 *   pier-tests --list        every suite, SUITE/CASE and SUITE/CASE/TEST,
 *                            one per line, in the order they run
 *   pier-tests --providers   the compiled providers, one per line
 *   pier-tests --child NAME ARGS...   the child side of a share test
 *
 * Runs on the provider named by $PIER_BACKEND (default: the loop's
 * default) every test, or only those NAMEs select: a NAME is a suite
 * ("stream"), a test case ("io/ordering") or one test
 * ("io/ordering/test_pending_sends_deliver_in_order"), as --list prints
 * them.  Check's CK_RUN_SUITE / CK_RUN_CASE narrow the choice further.
 * Prints Check's summary and one line
 *   pier-tests: provider NAME checks N failures F
 * and exits non-zero on any failure (2 for a NAME that names nothing).
 *
 * Where Check cannot fork (Windows), every test runs in this one process
 * and Check's per-test timeouts do not apply.  Then each test's result is
 * also printed as it ends (a crash or hang shows where it happened), and
 * a watchdog ends a run that takes longer than $PIER_TEST_DEADLINE
 * seconds (default 900) with a "pier-tests: ... hung" line.
 * tests/run-providers.sh then runs each suite in a process of its own.
 */
#ifdef HAVE_CONFIG_H
#  include <config.h> /* PIER_HAVE_LIBEVENT */
#endif
#include "helpers.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#  include <unistd.h>
#endif

typedef Suite *(*suite_fn)(void);

/*
 * alloc first: pier_set_allocator needs a process with no loop alive,
 * and without fork a failed test elsewhere leaves its loop behind.
 */
static const suite_fn suites[] = {
  suite_alloc,
  suite_errors,   suite_loop,     suite_timer,   suite_post, suite_fairness,
  suite_protocol, suite_spi, suite_socket,   suite_sockopt, suite_accept,
  suite_io,       suite_udp,      suite_stream,  suite_cancel,
  suite_reset,    suite_badinput, suite_buffers, suite_blocking, suite_resolve, suite_qos,
  suite_multicast, suite_poll, suite_threads, suite_netevents,
  suite_oshandle, suite_edges, suite_share, suite_msg, suite_msgbad, suite_tls,
  suite_argerrors,
  suite_reenter, suite_slowcallers, suite_emfile, suite_chaos, suite_fault,
#if PIER_HAVE_LIBEVENT
  suite_syscalls, /* that provider's system call table */
#endif
};

/* --- tests by name ---------------------------------------------------- */

/*
 * The suites are built through the wrappers helpers.h puts in place of
 * Check's calls: they print the names (--list), add only the tests the
 * command line selects, and tag each test case that keeps one so that
 * Check runs only those.
 */
#define SELECTED_TAG "pier-selected"
#define MAX_CASES 512

static struct test_case {
  TCase *tc;
  const char *suite, *name; /* as given to suite_create / tcase_create */
  int selected;             /* tests of this case the selection keeps */
} cases[MAX_CASES];
static size_t ncases;
static const char *cur_suite = "?"; /* the suite being built */
static bool listing;                /* --list: print names as built */
#define MAX_NAMES 64
static const char *wanted[MAX_NAMES]; /* the NAMEs; none: every test */
static int nwanted;
static bool wanted_hit[MAX_NAMES];    /* NAME matched a suite, case or test */
static int cases_kept;                /* of the suite being built */

/* Whether PAT ("suite", "suite/case" or "suite/case/test") names the
   item with these parts; CASE and TEST are NULL for a suite or a case. */
static bool name_matches(const char *pat, const char *suite,
                         const char *tcase, const char *test) {
  const char *part[3] = {suite, tcase, test};
  for (int i = 0; i < 3; i++) {
    size_t n = strcspn(pat, "/");
    if (!part[i]) return false; /* the pattern is more precise */
    if (strlen(part[i]) != n || strncmp(pat, part[i], n) != 0) return false;
    if (pat[n] == '\0') return true;
    pat += n + 1;
  }
  return false;
}

/* Whether the selection keeps the item; marks the NAMEs that match. */
static bool selected(const char *suite, const char *tcase, const char *test) {
  bool any = nwanted == 0;
  for (int i = 0; i < nwanted; i++)
    if (name_matches(wanted[i], suite, tcase, test))
      any = wanted_hit[i] = true;
  return any;
}

static struct test_case *case_of(TCase *tc) {
  for (size_t i = 0; i < ncases; i++)
    if (cases[i].tc == tc) return &cases[i];
  return NULL;
}

Suite *t_suite_create(const char *name) {
  cur_suite = name;
  if (listing) printf("%s\n", name);
  (void)selected(name, NULL, NULL);
  return (suite_create)(name);
}

TCase *t_tcase_create(const char *name) {
  TCase *tc = (tcase_create)(name);
  if (ncases == MAX_CASES) {
    fprintf(stderr, "pier-tests: more than %d test cases: raise MAX_CASES "
            "in tests/main.c\n", MAX_CASES);
    exit(EXIT_FAILURE);
  }
  cases[ncases++] = (struct test_case){tc, cur_suite, name, 0};
  if (listing) printf("%s/%s\n", cur_suite, name);
  (void)selected(cur_suite, name, NULL);
  return tc;
}

void t_tcase_add_test(TCase *tc, const TTest *tt, int sig, int exit_value,
                      int start, int end) {
  struct test_case *c = case_of(tc);
  const char *suite = c ? c->suite : cur_suite, *tcase = c ? c->name : "?";
  if (listing) printf("%s/%s/%s\n", suite, tcase, tt->name);
  if (!selected(suite, tcase, tt->name)) return;
  if (c) c->selected++;
  (_tcase_add_test)(tc, tt, sig, exit_value, start, end);
}

void t_suite_add_tcase(Suite *s, TCase *tc) {
  struct test_case *c = case_of(tc);
  if (nwanted > 0 && c && c->selected > 0) {
    tcase_set_tags(tc, SELECTED_TAG);
    cases_kept++;
  }
  (suite_add_tcase)(s, tc);
}

/* A runner holding every suite the selection keeps (all without one).
   Returns NULL, having said why, when a NAME names nothing. */
static SRunner *build_runner(void) {
  SRunner *sr = srunner_create(NULL), *unused = srunner_create(NULL);
  for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
    cases_kept = 0;
    Suite *s = suites[i]();
    /* Left out, a suite prints nothing in the no-fork log either. */
    srunner_add_suite(nwanted > 0 && cases_kept == 0 ? unused : sr, s);
  }
  srunner_free(unused);
  for (int i = 0; i < nwanted; i++) {
    if (wanted_hit[i]) continue;
    fprintf(stderr, "pier-tests: no suite, test case or test is named "
            "\"%s\" (pier-tests --list names them all)\n", wanted[i]);
    srunner_free(sr);
    return NULL;
  }
  return sr;
}

static void usage(FILE *f) {
  fprintf(f, "usage: pier-tests [--xml FILE] [NAME...]   run every test, "
             "or the suites, SUITE/CASE or SUITE/CASE/TEST named\n"
             "       pier-tests --list                  every NAME, one "
             "per line\n"
             "       pier-tests --providers             the compiled "
             "providers\n"
             "PIER_BACKEND=NAME picks the provider; see tests/README.md.\n");
}

/* --- the no-fork watchdog -------------------------------------------- */

static char provider_name[64];
static int deadline_s;

static void *watchdog(void *arg) {
  (void)arg;
  t_sleep_ms(deadline_s * 1000);
  printf("\npier-tests: provider %s hung: the run took more than %d s "
         "(no-fork mode, where Check's per-test timeouts do not apply; "
         "the last result above is the test before the one that hung)\n",
         provider_name, deadline_s);
  fflush(stdout);
  fflush(stderr);
  _exit(3);
  return NULL;
}

static void start_watchdog(void) {
  const char *env = getenv("PIER_TEST_DEADLINE");
  pthread_t th;
  deadline_s = env && *env ? atoi(env) : 900;
  if (deadline_s <= 0) return;
  if (pthread_create(&th, NULL, watchdog, NULL) == 0) pthread_detach(th);
}

/* Prints the suites, test cases and tests; returns the exit status. */
static int list_tests(void) {
  listing = true;
  SRunner *sr = build_runner();
  srunner_free(sr);
  fflush(stdout);
  return EXIT_SUCCESS;
}

/* Parses [--xml FILE] [NAME...] into *xml and wanted[]; returns 0, or
   the exit status when the command line was wrong or asked for help. */
static int parse_args(int argc, char **argv, const char **xml) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--xml") == 0 && i + 1 < argc) {
      *xml = argv[++i];
    } else if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return EXIT_SUCCESS;
    } else if (argv[i][0] == '-' || nwanted == MAX_NAMES) {
      usage(stderr);
      return 2;
    } else {
      wanted[nwanted++] = argv[i];
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--providers") == 0) {
    const char *names[32];
    size_t n = pier_providers(names, 32);
    for (size_t i = 0; i < n && i < 32; i++) printf("%s\n", names[i]);
    return 0;
  }
  t_os_init();
  /* A child process the share suite started (tests/test_share.c). */
  if (argc > 2 && strcmp(argv[1], "--child") == 0)
    return t_share_child(argc - 2, argv + 2);
  if (argc == 2 && strcmp(argv[1], "--list") == 0) return list_tests();
  const char *xml = NULL;
  int rc = parse_args(argc, argv, &xml);
  if (rc >= 0) return rc;
  /* Outside a test: Check's assertions may not be used here. */
  pier_loop *probe = NULL;
  rc = pier_loop_new(NULL, &probe);
  if (rc != 0) {
    fprintf(stderr, "pier-tests: no loop on provider %s: %s\n",
            getenv("PIER_BACKEND") ? getenv("PIER_BACKEND") : "(default)",
            pier_strerror(rc));
    return EXIT_FAILURE;
  }
  snprintf(provider_name, sizeof provider_name, "%s",
           pier_loop_backend(probe));
  pier_loop_free(probe);

  SRunner *sr = build_runner();
  if (!sr) return 2;
  if (xml) srunner_set_xml(sr, xml);
  if (srunner_fork_status(sr) == CK_NOFORK) {
    /* Check prints each result to stdout as the test ends ("-"). */
    if (!getenv("CK_LOG_FILE_NAME")) srunner_set_log(sr, "-");
    start_watchdog();
  }
  if (nwanted > 0)
    srunner_run_tagged(sr, NULL, NULL, SELECTED_TAG, NULL, CK_NORMAL);
  else
    srunner_run_all(sr, CK_NORMAL);
  int checks = srunner_ntests_run(sr);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  printf("pier-tests: provider %s checks %d failures %d\n", provider_name,
         checks, failed);
  fflush(stdout);
  return failed == 0 && checks > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
