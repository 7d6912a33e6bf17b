/* SPDX-License-Identifier: MIT */
/*
 * src/registry.c - the providers compiled in, in priority order, plus any
 * registered at run time, and the choice of one for a new loop
 * (by name, else $PIER_BACKEND, else the first whose probe succeeds).
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "internal.h"

#if PIER_HAVE_LIBEVENT
extern const pier_provider pier__provider_libevent;
#endif
#if PIER_HAVE_IOCP
extern const pier_provider pier__provider_iocp;
#endif

#define MAX_PROVIDERS 16

static const pier_provider *table[MAX_PROVIDERS] = {
#if PIER_HAVE_IOCP
  &pier__provider_iocp,
#endif
#if PIER_HAVE_LIBEVENT
  &pier__provider_libevent,
#endif
  NULL
};

static size_t count(void) {
  size_t n = 0;
  while (n < MAX_PROVIDERS && table[n]) n++;
  return n;
}

size_t pier_providers(const char **names, size_t cap) {
  size_t n = count();
  for (size_t i = 0; i < n && i < cap; i++) names[i] = table[i]->name;
  return n;
}

static const pier_provider *find(const char *name) {
  for (size_t i = 0; i < count(); i++)
    if (strcmp(table[i]->name, name) == 0) return table[i];
  return NULL;
}

int pier_spi_register(const pier_provider *p) {
  if (!p || !p->name || p->version < 1 || p->version > PIER_SPI_VERSION ||
      !p->loop_init || !p->loop_poll || !p->loop_wake || !p->open ||
      !p->close || !p->submit || !p->cancel)
    return PIER_EINVAL;
  if (find(p->name)) return PIER_EALREADY;
  size_t n = count();
  if (n + 1 >= MAX_PROVIDERS) return PIER_ENOMEM;
  table[n] = p;
  return 0;
}

static int usable(const pier_provider *p) {
  return p->probe ? p->probe() : 0;
}

int pier__provider_select(const char *name, const pier_provider **out) {
  if (!name || !*name) name = getenv("PIER_BACKEND");
  if (name && *name) {
    const pier_provider *p = find(name);
    if (!p || usable(p) != 0) return PIER_ENOPROVIDER;
    *out = p;
    return 0;
  }
  for (size_t i = 0; i < count(); i++) {
    if (usable(table[i]) == 0) {
      *out = table[i];
      return 0;
    }
  }
  return PIER_ENOPROVIDER;
}
