/* SPDX-License-Identifier: MIT */
/*
 * tests/main.c - the pier test runner: every suite, one list.
 *
 * Runs on the provider named by $PIER_BACKEND (default: the loop's
 * default).  Prints Check's summary and one line
 *   pier-tests: provider NAME checks N failures F
 * and exits non-zero on any failure.
 *   pier-tests --providers   lists the compiled providers, one per line.
 *   pier-tests --child NAME ARGS...   the child side of a share test.
 *
 * Where Check cannot fork (Windows), every test runs in this one process
 * and Check's per-test timeouts do not apply.  Then each test's result is
 * also printed as it ends (a crash or hang shows where it happened), and
 * a watchdog ends a run that takes longer than $PIER_TEST_DEADLINE
 * seconds (default 900) with a "pier-tests: ... hung" line.
 */
#include "helpers.h"
#include <pthread.h>
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
  suite_oshandle, suite_share, suite_msg, suite_msgbad, suite_tls,
  suite_argerrors,
};

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
  /* Outside a test: Check's assertions may not be used here. */
  pier_loop *probe = NULL;
  int rc = pier_loop_new(NULL, &probe);
  if (rc != 0) {
    fprintf(stderr, "pier-tests: no loop on provider %s: %s\n",
            getenv("PIER_BACKEND") ? getenv("PIER_BACKEND") : "(default)",
            pier_strerror(rc));
    return EXIT_FAILURE;
  }
  snprintf(provider_name, sizeof provider_name, "%s",
           pier_loop_backend(probe));
  pier_loop_free(probe);

  SRunner *sr = srunner_create(NULL);
  for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
    srunner_add_suite(sr, suites[i]());
  if (argc > 1) srunner_set_xml(sr, argv[1]);
  if (srunner_fork_status(sr) == CK_NOFORK) {
    /* Check prints each result to stdout as the test ends ("-"). */
    if (!getenv("CK_LOG_FILE_NAME")) srunner_set_log(sr, "-");
    start_watchdog();
  }
  srunner_run_all(sr, CK_NORMAL);
  int checks = srunner_ntests_run(sr);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  printf("pier-tests: provider %s checks %d failures %d\n", provider_name,
         checks, failed);
  fflush(stdout);
  return failed == 0 && checks > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
