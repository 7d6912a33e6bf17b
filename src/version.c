/* SPDX-License-Identifier: MIT */
/* src/version.c - the version of the library actually linked. */
#include "internal.h"

#define PIER__STR2(x) #x
#define PIER__STR(x) PIER__STR2(x)

unsigned pier_version(void) { return PIER_VERSION_HEX; }

const char *pier_version_string(void) {
  return PIER__STR(PIER_VERSION_MAJOR) "." PIER__STR(PIER_VERSION_MINOR) "."
         PIER__STR(PIER_VERSION_PATCH);
}
