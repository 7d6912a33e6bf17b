/* SPDX-License-Identifier: MIT */
/*
 * src/log.c - the application's log hook; pier itself never prints.
 * Messages are formatted only when a hook is set, so a call that fails
 * for a bad argument costs one load and a branch without one.
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

/* "fn: why" at DEBUG, when a hook is set. */
static int bad(const char *fn, const char *fmt, va_list ap) {
  pier_log_fn hook = log_fn;
  if (!hook) return PIER_EINVAL;
  char msg[512];
  int n = snprintf(msg, sizeof msg, "%s: ", fn);
  if (n < 0 || (size_t)n >= sizeof msg) n = 0;
  vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
  hook(PIER_LOG_DEBUG, msg, log_ctx);
  return PIER_EINVAL;
}

int pier__bad(const char *fn, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = bad(fn, fmt, ap);
  va_end(ap);
  return rc;
}

int pier_spi_bad_arg(const char *fn, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = bad(fn, fmt, ap);
  va_end(ap);
  return rc;
}
