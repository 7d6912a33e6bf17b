/* SPDX-License-Identifier: MIT */
/*
 * src/multicast.c - joining and leaving multicast groups (WSPJoinLeaf's
 * datagram case) and choosing the interface multicast is sent from.  The
 * OS structures differ per family and per platform; the options go
 * through the socket's provider like every other option.
 */
#include <string.h>

#include "internal.h"

#ifndef _WIN32
#  include <net/if.h>
#  include <netinet/in.h>
#endif

/* IPv6 joins go by the RFC 3493 names where the OS has them. */
#if !defined(IPV6_JOIN_GROUP) && defined(IPV6_ADD_MEMBERSHIP)
#  define IPV6_JOIN_GROUP IPV6_ADD_MEMBERSHIP
#  define IPV6_LEAVE_GROUP IPV6_DROP_MEMBERSHIP
#endif

static int is_multicast(const struct sockaddr *a) {
  if (a->sa_family == AF_INET) {
    uint32_t h = ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);
    return (h & 0xf0000000u) == 0xe0000000u; /* 224.0.0.0/4 */
  }
  if (a->sa_family == AF_INET6)
    return ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr[0] == 0xff;
  return 0;
}

static int check(const char *fn, pier_socket *s, const pier_group *g) {
  int rc = pier__socket_usable(fn, s);
  if (rc) return rc;
  if (!g || pier__addr_check(fn, g->group, g->group_len))
    return g ? PIER_EINVAL : pier__bad(fn, "g is NULL");
  if (!(s->proto->caps & PIER_CAP_MULTIPOINT)) return PIER_EOPNOTSUPP;
  if (g->group->sa_family != s->proto->family) return PIER_EAFNOSUPPORT;
  if (!is_multicast(g->group))
    return pier__bad(fn, "g->group is not a multicast address");
  if (g->source && ((rc = pier__addr_check(fn, g->source, g->source_len)) ||
                    g->source->sa_family != g->group->sa_family))
    return rc ? rc : pier__bad(fn, "g->source is not of g->group's family");
  if (g->iface && ((rc = pier__addr_check(fn, g->iface, g->iface_len)) ||
                   g->iface->sa_family != AF_INET))
    return rc ? rc : pier__bad(fn, "g->iface is not an IPv4 address");
  return 0;
}

static struct in_addr v4(const struct sockaddr *a) {
  return ((const struct sockaddr_in *)a)->sin_addr;
}

/* The IPv4 interface: its address, else its index where the OS takes one
   in an in_addr (Windows: 0.0.0.index), else any. */
static struct in_addr v4_iface(const pier_group *g) {
  struct in_addr a;
  if (g->iface) return v4(g->iface);
#ifdef _WIN32
  a.s_addr = htonl(g->iface_index);
#else
  a.s_addr = htonl(INADDR_ANY);
#endif
  return a;
}

static int set(pier_socket *s, int level, int name, const void *v, size_t len) {
  return pier__prov_setsockopt(s, level, name, v, len);
}

static int ipv4(pier_socket *s, const pier_group *g, int join) {
  if (g->source) {
#ifdef IP_ADD_SOURCE_MEMBERSHIP
    struct ip_mreq_source m;
    memset(&m, 0, sizeof m);
    m.imr_multiaddr = v4(g->group);
    m.imr_sourceaddr = v4(g->source);
    m.imr_interface = v4_iface(g);
    return set(s, IPPROTO_IP, join ? IP_ADD_SOURCE_MEMBERSHIP
                                   : IP_DROP_SOURCE_MEMBERSHIP, &m, sizeof m);
#else
    return PIER_EOPNOTSUPP;
#endif
  }
#if defined(__linux__)
  if (!g->iface && g->iface_index) { /* Linux takes an index in ip_mreqn */
    struct ip_mreqn m;
    memset(&m, 0, sizeof m);
    m.imr_multiaddr = v4(g->group);
    m.imr_ifindex = (int)g->iface_index;
    return set(s, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP,
               &m, sizeof m);
  }
#endif
  struct ip_mreq m;
  memset(&m, 0, sizeof m);
  m.imr_multiaddr = v4(g->group);
  m.imr_interface = v4_iface(g);
  return set(s, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m,
             sizeof m);
}

static int ipv6(pier_socket *s, const pier_group *g, int join) {
  if (g->source) {
#ifdef MCAST_JOIN_SOURCE_GROUP
    struct group_source_req r;
    memset(&r, 0, sizeof r);
    r.gsr_interface = g->iface_index;
    memcpy(&r.gsr_group, g->group, g->group_len);
    memcpy(&r.gsr_source, g->source, g->source_len);
    return set(s, IPPROTO_IPV6, join ? MCAST_JOIN_SOURCE_GROUP
                                     : MCAST_LEAVE_SOURCE_GROUP, &r, sizeof r);
#else
    return PIER_EOPNOTSUPP;
#endif
  }
  struct ipv6_mreq m;
  memset(&m, 0, sizeof m);
  m.ipv6mr_multiaddr = ((const struct sockaddr_in6 *)g->group)->sin6_addr;
  m.ipv6mr_interface = g->iface_index;
  return set(s, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &m,
             sizeof m);
}

static int membership(pier_socket *s, const pier_group *g, int join) {
  int rc = check(join ? "pier_join_group" : "pier_leave_group", s, g);
  if (rc) return rc;
  return g->group->sa_family == AF_INET ? ipv4(s, g, join) : ipv6(s, g, join);
}

int pier_join_group(pier_socket *s, const pier_group *g) {
  return membership(s, g, 1);
}

int pier_leave_group(pier_socket *s, const pier_group *g) {
  return membership(s, g, 0);
}

int pier_set_multicast_if(pier_socket *s, const struct sockaddr *iface,
                          size_t iface_len, unsigned index) {
  int rc = pier__socket_usable(__func__, s);
  if (rc) return rc;
  if (!(s->proto->caps & PIER_CAP_MULTIPOINT)) return PIER_EOPNOTSUPP;
  if (iface && ((rc = pier__addr_check(__func__, iface, iface_len)) ||
                iface->sa_family != AF_INET || s->proto->family != AF_INET))
    return rc ? rc : pier__bad(__func__, "iface is not an IPv4 address for "
                               "an IPv4 socket (IPv6 takes index)");
  if (s->proto->family == AF_INET6) {
    unsigned idx = index;
    return set(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof idx);
  }
  struct in_addr a;
  if (iface) {
    a = v4(iface);
  } else {
#if defined(__linux__)
    struct ip_mreqn m;
    memset(&m, 0, sizeof m);
    m.imr_ifindex = (int)index;
    return set(s, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m);
#elif defined(_WIN32)
    a.s_addr = htonl(index);
#else
    if (index) return PIER_EOPNOTSUPP;
    a.s_addr = htonl(INADDR_ANY);
#endif
  }
  return set(s, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof a);
}
