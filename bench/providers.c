/* SPDX-License-Identifier: MIT */
/*
 * bench/providers.c - print, one a line, the pier providers this machine
 * can run a loop on (compiled in, and pier_loop_new succeeds): bench/run
 * measures examples/iocpserver on each of them (PIER_BACKEND=name).
 */
#include <pier.h>

#include <stdio.h>
#include <string.h>

int main(void) {
  const char *names[64];
  size_t n = pier_providers(names, 64);
  if (n > 64) n = 64;
  for (size_t i = 0; i < n; i++) {
    pier_loop_options opts = {sizeof opts, names[i], 0, 1};
    pier_loop *loop;
    if (pier_loop_new(&opts, &loop) != 0) continue;
    /* A layered provider (TLS ...) runs over another one: not an echo
       server's provider of its own. */
    if (strcmp(pier_loop_backend(loop), names[i]) == 0) printf("%s\n", names[i]);
    pier_loop_free(loop);
  }
  return 0;
}
