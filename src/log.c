/* SPDX-License-Identifier: MIT */
/*
 * src/log.c - the application's log hook; pier itself never prints.
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static pier_log_fn log_fn;
static void *log_ctx;

void pier_set_log(pier_log_fn fn, void *ctx) {
  log_ctx = ctx;
  log_fn = fn;
}

void pier_spi_log(int level, const char *fmt, ...) {
  pier_log_fn fn = log_fn;
  if (!fn) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fn(level, msg, log_ctx);
}
