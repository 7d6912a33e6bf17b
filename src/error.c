/* SPDX-License-Identifier: MIT */
/*
 * src/error.c - pier_strerror and pier_err_name, generated from the one
 * list in include/pier/errno.h.
 */
#include "internal.h"

const char *pier_strerror(int err) {
  switch (err) {
  case 0: return "success";
#define XX(name, num, msg) case PIER_##name: return msg;
    PIER_ERRNO_MAP(XX)
#undef XX
  default: return "unknown error";
  }
}

const char *pier_err_name(int err) {
  switch (err) {
  case 0: return "OK";
#define XX(name, num, msg) case PIER_##name: return #name;
    PIER_ERRNO_MAP(XX)
#undef XX
  default: return "UNKNOWN";
  }
}
