/*
 * tests/main.c - the pier test runner: every suite, one list.
 *
 * Runs on the provider named by $PIER_BACKEND (default: the loop's
 * default).  Prints Check's summary and one line
 *   pier-tests: provider NAME checks N failures F
 * and exits non-zero on any failure.
 *   pier-tests --providers   lists the compiled providers, one per line.
 */
#include "helpers.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Suite *(*suite_fn)(void);

static const suite_fn suites[] = {
  suite_errors,   suite_loop,     suite_timer,   suite_post,
  suite_protocol, suite_socket,   suite_sockopt, suite_accept,
  suite_io,       suite_udp,      suite_stream,  suite_cancel,
  suite_reset,    suite_badinput, suite_blocking, suite_resolve,
  suite_alloc,
};

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--providers") == 0) {
    const char *names[32];
    size_t n = pier_providers(names, 32);
    for (size_t i = 0; i < n && i < 32; i++) printf("%s\n", names[i]);
    return 0;
  }
#ifndef _WIN32
  /* pier must never raise SIGPIPE; leave the default action in place so a
     stray one kills the test and is reported. */
  signal(SIGPIPE, SIG_DFL);
#endif
  /* Outside a test: Check's assertions may not be used here. */
  pier_loop *probe = NULL;
  int rc = pier_loop_new(NULL, &probe);
  if (rc != 0) {
    fprintf(stderr, "pier-tests: no loop on provider %s: %s\n",
            getenv("PIER_BACKEND") ? getenv("PIER_BACKEND") : "(default)",
            pier_strerror(rc));
    return EXIT_FAILURE;
  }
  char name[64];
  snprintf(name, sizeof name, "%s", pier_loop_backend(probe));
  pier_loop_free(probe);

  SRunner *sr = srunner_create(NULL);
  for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
    srunner_add_suite(sr, suites[i]());
  if (argc > 1) srunner_set_xml(sr, argv[1]);
  srunner_run_all(sr, CK_NORMAL);
  int checks = srunner_ntests_run(sr);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  printf("pier-tests: provider %s checks %d failures %d\n", name, checks,
         failed);
  return failed == 0 && checks > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
