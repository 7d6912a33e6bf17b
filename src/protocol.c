/* SPDX-License-Identifier: MIT */
/*
 * src/protocol.c - the protocol catalog (WSAEnumProtocols of pier): the
 * base entries of the OS sockets, the layered entries built in (pier's
 * message protocol and TCP with connect data, src/layers/msg/), and any a
 * layered provider registers at run time.
 */
#include <string.h>

#include "internal.h"

#ifndef _WIN32
#  include <sys/un.h>
#endif

#define TCP_CAPS \
  (PIER_CAP_STREAM | PIER_CAP_GRACEFUL_CLOSE | PIER_CAP_EXPEDITED_DATA | \
   PIER_CAP_QOS)
#define UDP_CAPS \
  (PIER_CAP_MESSAGE | PIER_CAP_CONNECTIONLESS | PIER_CAP_MULTIPOINT | \
   PIER_CAP_QOS)
/* TCP with pier's connect-time handshake (doc/protocol.md). */
#define CD_CAPS \
  (PIER_CAP_STREAM | PIER_CAP_CONNECT_DATA | PIER_CAP_GRACEFUL_CLOSE | \
   PIER_CAP_QOS)
/* pier's message protocol over TCP. */
#define MSG_CAPS \
  (PIER_CAP_MESSAGE | PIER_CAP_CONNECT_DATA | PIER_CAP_DISCONNECT_DATA | \
   PIER_CAP_PARTIAL_MESSAGE | PIER_CAP_GRACEFUL_CLOSE | PIER_CAP_QOS)

extern const pier_provider pier__layer_msg;

#define MAX_ENTRIES 32

/* Positions of the built-in entries. */
enum {
  E_TCP4, E_TCP6, E_UDP4, E_UDP6,
#ifndef _WIN32
  E_LOCAL,
#endif
  E_TCP4CD, E_TCP6CD, E_MSG4, E_MSG6, E_BUILTIN
};

/* Entry i is layered when chain[i].layer is set. */
static pier_protocol_info catalog[MAX_ENTRIES] = {
  [E_TCP4] = { "tcp4", "TCP over IPv4", AF_INET, SOCK_STREAM, IPPROTO_TCP,
               TCP_CAPS, 0 },
  [E_TCP6] = { "tcp6", "TCP over IPv6 (dual-stack with PIER_SO_V6ONLY 0)",
               AF_INET6, SOCK_STREAM, IPPROTO_TCP, TCP_CAPS, 0 },
  [E_UDP4] = { "udp4", "UDP over IPv4", AF_INET, SOCK_DGRAM, IPPROTO_UDP,
               UDP_CAPS | PIER_CAP_BROADCAST, 65507 },
  [E_UDP6] = { "udp6", "UDP over IPv6", AF_INET6, SOCK_DGRAM, IPPROTO_UDP,
               UDP_CAPS, 65527 },
#ifndef _WIN32
  [E_LOCAL] = { "local", "local stream socket (AF_UNIX)", AF_UNIX,
                SOCK_STREAM, 0, PIER_CAP_STREAM | PIER_CAP_GRACEFUL_CLOSE, 0 },
#endif
  [E_TCP4CD] = { "tcp4+cd", "TCP over IPv4 with pier's connect-data handshake",
                 AF_INET, SOCK_STREAM, IPPROTO_TCP, CD_CAPS, 0 },
  [E_TCP6CD] = { "tcp6+cd", "TCP over IPv6 with pier's connect-data handshake",
                 AF_INET6, SOCK_STREAM, IPPROTO_TCP, CD_CAPS, 0 },
  [E_MSG4] = { "msg4", "pier message protocol over TCP/IPv4", AF_INET,
               SOCK_STREAM, IPPROTO_TCP, MSG_CAPS, PIER_MESSAGE_MAX },
  [E_MSG6] = { "msg6", "pier message protocol over TCP/IPv6", AF_INET6,
               SOCK_STREAM, IPPROTO_TCP, MSG_CAPS, PIER_MESSAGE_MAX },
};

/* The layer of each entry and the name of the entry below it. */
static struct chain {
  const pier_provider *layer;
  const char *base;
} chain[MAX_ENTRIES] = {
  [E_TCP4CD] = { &pier__layer_msg, "tcp4" },
  [E_TCP6CD] = { &pier__layer_msg, "tcp6" },
  [E_MSG4] = { &pier__layer_msg, "tcp4" },
  [E_MSG6] = { &pier__layer_msg, "tcp6" },
};

/* Entries in use; grows only under pier_spi_register_protocol. */
static size_t nentries = E_BUILTIN;

static size_t count(void) { return nentries; }

size_t pier_protocols(const pier_protocol_info **list) {
  size_t n = count();
  if (list) *list = catalog;
  return n;
}

static const pier_protocol_info *find(const char *name, size_t *index) {
  size_t n = count();
  for (size_t i = 0; i < n; i++) {
    if (strcmp(catalog[i].name, name) == 0) {
      if (index) *index = i;
      return &catalog[i];
    }
  }
  return NULL;
}

const pier_protocol_info *pier_protocol_find(const char *name) {
  return name ? find(name, NULL) : NULL;
}

const pier_protocol_info *pier__protocol_for(int family, int socktype) {
  size_t n = count();
  for (size_t i = 0; i < n; i++)
    if (!chain[i].layer && catalog[i].family == family &&
        catalog[i].socktype == socktype)
      return &catalog[i];
  return NULL;
}

int pier_spi_protocol_layer(const pier_protocol_info *entry,
                            const pier_provider **layer,
                            const pier_protocol_info **base) {
  if (!entry || !layer || !base)
    return pier__bad(__func__, "%s is NULL",
                     !entry ? "entry" : !layer ? "layer" : "base");
  size_t i = (size_t)-1;
  *layer = NULL;
  *base = NULL;
  if (!entry->name || find(entry->name, &i) != entry)
    return pier__bad(__func__, "entry is not in the catalog");
  if (chain[i].layer) {
    *layer = chain[i].layer;
    *base = find(chain[i].base, NULL);
  }
  return 0;
}

int pier_spi_register_protocol(const pier_protocol_info *entry,
                               const pier_provider *layer, const char *base) {
  if (!entry || !entry->name || !layer || !base)
    return pier__bad(__func__, "%s is NULL", !entry ? "entry"
                     : !entry->name ? "entry->name" : !layer ? "layer"
                     : "base");
  if (layer->version < 3 || !(layer->caps & PIER_PCAP_LAYER))
    return pier__bad(__func__,
                     "layer is not a layered provider (version %d < 3 or no "
                     "PIER_PCAP_LAYER)", layer->version);
  const char *slot = pier__missing_socket_slot(layer);
  if (slot) {
    pier_spi_log(PIER_LOG_ERROR, "layer %s: required slot %s is NULL",
                 layer->name ? layer->name : "?", slot);
    return PIER_EINVAL;
  }
  if (find(entry->name, NULL)) return PIER_EALREADY;
  size_t b;
  if (!find(base, &b)) return PIER_ENOENT;
  size_t n = count();
  if (n == MAX_ENTRIES) return PIER_ENOMEM;
  catalog[n] = *entry;
  chain[n].layer = layer;
  chain[n].base = catalog[b].name;
  nentries = n + 1;
  return 0;
}
