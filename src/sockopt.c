/* SPDX-License-Identifier: MIT */
/*
 * src/sockopt.c - portable PIER_SO_* options mapped onto the OS's
 * level/name pairs (per platform), and the raw pass-through.  Every
 * option goes through the provider's getsockopt/setsockopt slots so a
 * layered provider can intercept them.
 */
#include <string.h>

#include "internal.h"

#ifdef _WIN32
#  include <mstcpip.h>
#else
#  include <netinet/in.h>
#  include <netinet/tcp.h>
#endif

/* Windows 10 has these TCP options; older mingw headers lack the names. */
#if defined(_WIN32) && !defined(TCP_KEEPIDLE)
#  define TCP_KEEPIDLE 3
#endif
#if defined(_WIN32) && !defined(TCP_KEEPCNT)
#  define TCP_KEEPCNT 16
#endif
#if defined(_WIN32) && !defined(TCP_KEEPINTVL)
#  define TCP_KEEPINTVL 17
#endif

typedef struct { int level, name; } os_opt;

/* The OS level/name of a simple int option; 0 if found. */
static int map(const char *fn, const pier_socket *s, int opt, os_opt *o) {
  int v6 = s->proto->family == AF_INET6;
  switch (opt) {
  case PIER_SO_NODELAY: o->level = IPPROTO_TCP; o->name = TCP_NODELAY; break;
  case PIER_SO_KEEPALIVE: o->level = SOL_SOCKET; o->name = SO_KEEPALIVE; break;
#if defined(TCP_KEEPIDLE)
  case PIER_SO_KEEPIDLE: o->level = IPPROTO_TCP; o->name = TCP_KEEPIDLE; break;
#elif defined(TCP_KEEPALIVE)
  case PIER_SO_KEEPIDLE: o->level = IPPROTO_TCP; o->name = TCP_KEEPALIVE; break;
#endif
#ifdef TCP_KEEPINTVL
  case PIER_SO_KEEPINTVL: o->level = IPPROTO_TCP; o->name = TCP_KEEPINTVL; break;
#endif
#ifdef TCP_KEEPCNT
  case PIER_SO_KEEPCNT: o->level = IPPROTO_TCP; o->name = TCP_KEEPCNT; break;
#endif
  case PIER_SO_RCVBUF: o->level = SOL_SOCKET; o->name = SO_RCVBUF; break;
  case PIER_SO_SNDBUF: o->level = SOL_SOCKET; o->name = SO_SNDBUF; break;
  case PIER_SO_REUSEADDR: o->level = SOL_SOCKET; o->name = SO_REUSEADDR; break;
#ifdef SO_REUSEPORT
  case PIER_SO_REUSEPORT: o->level = SOL_SOCKET; o->name = SO_REUSEPORT; break;
#endif
  case PIER_SO_V6ONLY:
    if (!v6) return PIER_ENOPROTOOPT;
    o->level = IPPROTO_IPV6; o->name = IPV6_V6ONLY; break;
  case PIER_SO_BROADCAST: o->level = SOL_SOCKET; o->name = SO_BROADCAST; break;
  case PIER_SO_TOS:
    if (v6) { o->level = IPPROTO_IPV6; o->name = IPV6_TCLASS; }
    else if (s->proto->family == AF_INET) { o->level = IPPROTO_IP; o->name = IP_TOS; }
    else return PIER_ENOPROTOOPT;
    break;
  case PIER_SO_TYPE: o->level = SOL_SOCKET; o->name = SO_TYPE; break;
  case PIER_SO_OOBINLINE: o->level = SOL_SOCKET; o->name = SO_OOBINLINE; break;
  case PIER_SO_MULTICAST_LOOP:
    if (!(s->proto->caps & PIER_CAP_MULTIPOINT)) return PIER_ENOPROTOOPT;
    o->level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
    o->name = v6 ? IPV6_MULTICAST_LOOP : IP_MULTICAST_LOOP;
    break;
  case PIER_SO_MULTICAST_HOPS:
    if (!(s->proto->caps & PIER_CAP_MULTIPOINT)) return PIER_ENOPROTOOPT;
    o->level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
    o->name = v6 ? IPV6_MULTICAST_HOPS : IP_MULTICAST_TTL;
    break;
  default:
    return (opt >= PIER_SO_NODELAY && opt <= PIER_SO_SHED_COUNT)
               ? PIER_ENOPROTOOPT
               : pier__bad(fn, "opt %d is no PIER_SO_* option", opt);
  }
  int tcp_only = o->level == IPPROTO_TCP;
  if (tcp_only && s->proto->protocol != IPPROTO_TCP) return PIER_ENOPROTOOPT;
  return 0;
}

int pier__prov_setsockopt(pier_socket *s, int level, int name, const void *v,
                          size_t len) {
  pier__lock(s->loop);
  int rc = s->prov->setsockopt ? s->prov->setsockopt(s, level, name, v, len)
                               : PIER_EOPNOTSUPP;
  pier__unlock(s->loop);
  return rc;
}

int pier__prov_getsockopt(pier_socket *s, int level, int name, void *v,
                          size_t *len) {
  pier__lock(s->loop);
  int rc = s->prov->getsockopt ? s->prov->getsockopt(s, level, name, v, len)
                               : PIER_EOPNOTSUPP;
  pier__unlock(s->loop);
  return rc;
}

static int set_int(pier_socket *s, const os_opt *o, int value) {
  return pier__prov_setsockopt(s, o->level, o->name, &value, sizeof value);
}

static int get_int(pier_socket *s, const os_opt *o, int *value) {
  int v = 0;
  size_t len = sizeof v;
  int rc = pier__prov_getsockopt(s, o->level, o->name, &v, &len);
  if (rc) return rc;
  /* Some options (Windows BOOL-likes, Linux IP_TOS) report fewer bytes. */
  if (len == 1) v = *(unsigned char *)&v;
  *value = v;
  return 0;
}

static int set_linger(pier_socket *s, int seconds) {
  struct linger l;
  memset(&l, 0, sizeof l);
  l.l_onoff = seconds >= 0;
  l.l_linger = seconds >= 0 ? seconds : 0;
  return pier__prov_setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

static int get_linger(pier_socket *s, int *seconds) {
  struct linger l;
  size_t len = sizeof l;
  int rc = pier__prov_getsockopt(s, SOL_SOCKET, SO_LINGER, &l, &len);
  if (rc == 0) *seconds = l.l_onoff ? (int)l.l_linger : -1;
  return rc;
}

/* Options a provider keeps itself, layered (messages, handshakes) or base
   (accept-first): PIER_ENOPROTOOPT from the others. */
static int layer_opt(int opt) {
  return opt == PIER_SO_MAX_MESSAGE || opt == PIER_SO_HANDSHAKE_TIMEOUT ||
         opt == PIER_SO_ACCEPT_FIRST || opt == PIER_SO_HANDSHAKES_MAX ||
         opt == PIER_SO_SHED_COUNT;
}

static int layer_opt_set(pier_socket *s, int opt, int value) {
  if (opt == PIER_SO_MAX_MESSAGE && (value < 1 || value > PIER_MESSAGE_MAX))
    return pier__bad("pier_setsockopt",
                     "PIER_SO_MAX_MESSAGE %d is outside 1..%d", value,
                     PIER_MESSAGE_MAX);
  if (opt == PIER_SO_HANDSHAKE_TIMEOUT && (value < 1 || value > 3600000))
    return pier__bad("pier_setsockopt",
                     "PIER_SO_HANDSHAKE_TIMEOUT %d is outside 1..3600000 ms",
                     value);
  if (opt == PIER_SO_ACCEPT_FIRST && (value < 0 || value > 3600000))
    return pier__bad("pier_setsockopt",
                     "PIER_SO_ACCEPT_FIRST %d is outside 0..3600000 ms", value);
  if (opt == PIER_SO_HANDSHAKES_MAX && (value < 1 || value > 65536))
    return pier__bad("pier_setsockopt",
                     "PIER_SO_HANDSHAKES_MAX %d is outside 1..65536", value);
  if (opt == PIER_SO_SHED_COUNT)
    return pier__bad("pier_setsockopt", "PIER_SO_SHED_COUNT is read-only");
  return pier__prov_setsockopt(s, PIER_SOL_PROVIDER, opt, &value,
                               sizeof value);
}

static int layer_opt_get(pier_socket *s, int opt, int *value) {
  size_t len = sizeof *value;
  return pier__prov_getsockopt(s, PIER_SOL_PROVIDER, opt, value, &len);
}

/* The core's record of a provider tuning option, or NULL. */
static int *tuning(pier_socket *s, int opt) {
  if (opt == PIER_SO_PREPOSTED_ACCEPTS) return &s->preposted;
  if (opt == PIER_SO_ZERO_READ) return &s->zero_read;
  return NULL;
}

int pier_setsockopt(pier_socket *s, int opt, int value) {
  int rc = pier__socket_usable(__func__, s);
  if (rc) return rc;
  int *t = tuning(s, opt);
  if (t) { /* told to the provider, kept here for pier_getsockopt */
    if (opt == PIER_SO_PREPOSTED_ACCEPTS && (value < 1 || value > 256))
      return pier__bad(__func__,
                       "PIER_SO_PREPOSTED_ACCEPTS %d is outside 1..256", value);
    if (opt == PIER_SO_ZERO_READ) value = value != 0;
    pier__lock(s->loop);
    rc = s->prov->setsockopt ? s->prov->setsockopt(s, PIER_SOL_PROVIDER, opt,
                                                   &value, sizeof value)
                             : PIER_EOPNOTSUPP;
    if (rc == 0) *t = value;
    pier__unlock(s->loop);
    return rc;
  }
  if (layer_opt(opt)) return layer_opt_set(s, opt, value);
  if (opt == PIER_SO_LINGER) return set_linger(s, value < 0 ? -1 : value);
  if (opt == PIER_SO_ERROR || opt == PIER_SO_TYPE)
    return pier__bad(__func__, "%s is read-only",
                     opt == PIER_SO_ERROR ? "PIER_SO_ERROR" : "PIER_SO_TYPE");
  if (opt == PIER_SO_TOS && (value < 0 || value > 255))
    return pier__bad(__func__, "PIER_SO_TOS %d is outside 0..255", value);
  if (opt == PIER_SO_MULTICAST_HOPS && (value < 0 || value > 255))
    return pier__bad(__func__, "PIER_SO_MULTICAST_HOPS %d is outside 0..255",
                     value);
  if ((opt == PIER_SO_KEEPIDLE || opt == PIER_SO_KEEPINTVL ||
       opt == PIER_SO_KEEPCNT || opt == PIER_SO_RCVBUF ||
       opt == PIER_SO_SNDBUF) && value <= 0)
    return pier__bad(__func__, "option %d takes a value above 0, not %d", opt,
                     value);
  os_opt o;
  if ((rc = map(__func__, s, opt, &o)) != 0) return rc;
  return set_int(s, &o, value);
}

int pier_getsockopt(pier_socket *s, int opt, int *value) {
  int rc = pier__socket_usable(__func__, s);
  if (rc) return rc;
  if (!value) return pier__bad(__func__, "value is NULL");
  int *t = tuning(s, opt);
  if (t) {
    pier__lock(s->loop);
    *value = *t;
    pier__unlock(s->loop);
    return 0;
  }
  if (layer_opt(opt)) return layer_opt_get(s, opt, value);
  if (opt == PIER_SO_LINGER) return get_linger(s, value);
  if (opt == PIER_SO_ERROR) {
    int e = 0;
    size_t len = sizeof e;
    rc = pier__prov_getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &len);
    if (rc == 0) *value = pier_spi_os_error(e);
    return rc;
  }
  os_opt o;
  if ((rc = map(__func__, s, opt, &o)) != 0) return rc;
  rc = get_int(s, &o, value);
  if (rc == 0 && o.level != IPPROTO_TCP && opt != PIER_SO_RCVBUF &&
      opt != PIER_SO_SNDBUF && opt != PIER_SO_TOS && opt != PIER_SO_TYPE &&
      opt != PIER_SO_MULTICAST_HOPS)
    *value = *value != 0; /* booleans come back as 0/1 */
  return rc;
}

int pier_setsockopt_raw(pier_socket *s, int level, int name, const void *val,
                        size_t len) {
  int rc = pier__socket_usable(__func__, s);
  if (rc) return rc;
  if (!val || len == 0)
    return pier__bad(__func__, "%s", !val ? "val is NULL" : "len is 0");
  return pier__prov_setsockopt(s, level, name, val, len);
}

int pier_getsockopt_raw(pier_socket *s, int level, int name, void *val,
                        size_t *len) {
  int rc = pier__socket_usable(__func__, s);
  if (rc) return rc;
  if (!val || !len || *len == 0)
    return pier__bad(__func__, "%s",
                     !val ? "val is NULL" : !len ? "len is NULL" : "*len is 0");
  return pier__prov_getsockopt(s, level, name, val, len);
}
