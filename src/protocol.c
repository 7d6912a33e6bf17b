/*
 * src/protocol.c - the protocol catalog (WSAEnumProtocols of pier).
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

static const pier_protocol_info catalog[] = {
  { "tcp4", "TCP over IPv4", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_CAPS, 0 },
  { "tcp6", "TCP over IPv6 (dual-stack with PIER_SO_V6ONLY 0)", AF_INET6,
    SOCK_STREAM, IPPROTO_TCP, TCP_CAPS, 0 },
  { "udp4", "UDP over IPv4", AF_INET, SOCK_DGRAM, IPPROTO_UDP,
    UDP_CAPS | PIER_CAP_BROADCAST, 65507 },
  { "udp6", "UDP over IPv6", AF_INET6, SOCK_DGRAM, IPPROTO_UDP, UDP_CAPS,
    65527 },
#ifndef _WIN32
  { "local", "local stream socket (AF_UNIX)", AF_UNIX, SOCK_STREAM, 0,
    PIER_CAP_STREAM | PIER_CAP_GRACEFUL_CLOSE, 0 },
#endif
};

#define NCATALOG (sizeof catalog / sizeof catalog[0])

size_t pier_protocols(const pier_protocol_info **list) {
  if (list) *list = catalog;
  return NCATALOG;
}

const pier_protocol_info *pier_protocol_find(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < NCATALOG; i++)
    if (strcmp(catalog[i].name, name) == 0) return &catalog[i];
  return NULL;
}

const pier_protocol_info *pier__protocol_for(int family, int socktype) {
  for (size_t i = 0; i < NCATALOG; i++)
    if (catalog[i].family == family && catalog[i].socktype == socktype)
      return &catalog[i];
  return NULL;
}
