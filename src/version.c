/* SPDX-License-Identifier: MIT */
/*
 * src/version.c - the version of the library actually linked: the values
 * of <pier/features.h> as configure wrote it for this build.
 */
#include "internal.h"

unsigned pier_version(void) { return PIER_VERSION_HEX; }

const char *pier_version_string(void) { return PIER_VERSION_STRING; }
