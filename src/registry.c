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

const char *pier__missing_socket_slot(const pier_provider *p) {
  if (!p->open) return "open";
  if (!p->close) return "close";
  if (!p->submit) return "submit";
  if (!p->cancel) return "cancel";
  return NULL;
}

/* The name of the first required slot p lacks, or NULL. */
static const char *missing_slot(const pier_provider *p) {
  if (!p->loop_init) return "loop_init";
  if (!p->loop_poll) return "loop_poll";
  if (!p->loop_wake) return "loop_wake";
  return pier__missing_socket_slot(p);
}

int pier_spi_register(const pier_provider *p) {
  if (!p || !p->name)
    return pier__bad(__func__, "%s is NULL", !p ? "p" : "p->name");
  if (p->version < 1 || p->version > PIER_SPI_VERSION) {
    pier_spi_log(PIER_LOG_ERROR, "provider %s: SPI version %d, this core "
                 "takes 1 to %d", p->name, p->version, PIER_SPI_VERSION);
    return PIER_EINVAL;
  }
  const char *slot = missing_slot(p);
  if (slot) {
    pier_spi_log(PIER_LOG_ERROR, "provider %s: required slot %s is NULL",
                 p->name, slot);
    return PIER_EINVAL;
  }
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
